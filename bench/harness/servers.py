"""The servers under test: the simulator and the sidecar, as subprocesses on free local ports.

Each runs ``python -m sidecar`` from the repository root with its output in a log file, whose
tail is shown when a server does not come up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STARTUP_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class Server:
    """A server subprocess started by the benchmark; its output goes to a log file."""

    name: str
    port: int
    probe_path: str  # answers 200 once the server is ready
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def _spawn(name: str, args: list[str], port: int, probe: str, workdir: Path) -> Server:
    log_path = workdir / f"{name}.log"
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Server(name, port, probe, proc, log_path, log)


def start_simulator(workdir: Path, latency_ms: float, chunk_delay_ms: float) -> Server:
    port = free_port()
    args = ["mock-upstream", "--host", HOST, "--port", str(port)]
    args += ["--latency-ms", str(latency_ms), "--chunk-delay-ms", str(chunk_delay_ms)]
    return _spawn("simulator", args, port, "/v1/models", workdir)


def redis_prefix() -> str:
    """Where a benchmark's sidecar writes in Redis: this run's own keys, removed afterwards."""
    return f"sidecar-bench:{os.getpid()}:"


def sidecar_config(
    upstream_port: int, limits: str | None = None, workdir: Path | None = None
) -> dict[str, Any]:
    """By default everything that is not the proxy core is off: no rate limit, no cache.

    ``limits`` ("memory" or a Redis URL) turns on what an app would run with: a request and a
    token limit on chat and its response cache. The load generator then sends each request as
    a new user (``load.rotate_users``), so limits never refuse and every lookup misses.
    """
    config: dict[str, Any] = {
        "providers": {
            "sim": {"base_url": f"http://{HOST}:{upstream_port}/v1", "api_key_env": None}
        },
        # A file, as in production: usage records are committed on the event loop (an
        # in-memory database can only be reached through aiosqlite's thread).
        "database_url": f"sqlite:///{workdir / 'usage.db'}" if workdir else "sqlite:///:memory:",
        "operations": {"chat": {"rate_limit": None, "cache_ttl_s": 0}},
    }
    if limits is not None:
        config["operations"]["chat"] = {
            "rate_limit": {"requests": 600, "per_s": 60, "tokens": 10_000_000},
            "cache_ttl_s": 60,
            "fallbacks": [],
        }
        if limits != "memory":
            config["redis_url"] = limits
            config["backends"] = {"redis_prefix": redis_prefix()}
    return config


def start_sidecar(workdir: Path, upstream_port: int, limits: str | None = None) -> Server:
    config = workdir / "sidecar.yaml"
    text = json.dumps(sidecar_config(upstream_port, limits, workdir), indent=2)
    config.write_text(text, encoding="utf-8")
    port = free_port()
    args = ["serve", "--config", str(config), "--host", HOST, "--port", str(port)]
    return _spawn("sidecar", args, port, "/healthz", workdir)


@contextlib.contextmanager
def simulator_and_sidecar(
    latency_ms: float, chunk_delay_ms: float, limits: str | None = None
) -> Iterator[tuple[Server, Server]]:
    """The simulator and the sidecar in front of it, stopped however the run ends."""
    with (
        tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        sim = start_simulator(workdir, latency_ms, chunk_delay_ms)
        stack.callback(sim.stop)
        sidecar = start_sidecar(workdir, sim.port, limits)
        stack.callback(sidecar.stop)
        yield sim, sidecar


async def wait_ready(session: aiohttp.ClientSession, server: Server) -> None:
    """Poll the server's probe until it answers 200; fail fast if the process dies."""
    deadline = time.perf_counter() + STARTUP_S
    while time.perf_counter() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start-up:\n{server.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            timeout = aiohttp.ClientTimeout(total=1)
            async with session.get(server.base + server.probe_path, timeout=timeout) as resp:
                await resp.read()
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer within {STARTUP_S:g} s:\n{server.log_tail()}")
