"""Real processes for the deployment tests: the simulator and a sidecar (``python -m sidecar``),
Prometheus and Alertmanager (Debian's packages), each on a free 127.0.0.1 port with its files in
a temporary directory, and a webhook receiver that records what Alertmanager posts.

Every wait is bounded and fails with the process's log; every process started is stopped (and
waited for) at the end of the module.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from tests.deploy import queries

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
START_S = 30.0  # longest any process may take to answer its readiness URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """A subprocess with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: TextIO

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return f"--- {self.name} log ({self.log_path}) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.log.close()


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: records every payload posted to /alerts."""

    url: str = ""
    payloads: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self, request: web.Request) -> web.Response:
        self.payloads.append(await request.json())
        self.arrived.set()
        return web.Response(text="ok")

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for payload in self.payloads for alert in payload["alerts"]]

    async def wait_for(self, alertname: str, timeout_s: float) -> list[dict[str, Any]]:
        """The alerts named ``alertname`` received within ``timeout_s`` (firing ones)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [
                alert
                for alert in self.alerts()
                if alert["labels"].get("alertname") == alertname and alert["status"] == "firing"
            ]
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                continue


def require_prometheus_and_alertmanager() -> None:
    """Skip (before anything starts) where Debian's packages are not installed."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
    if ALERTMANAGER is None:
        pytest.skip(
            "alertmanager is not installed (Debian: apt-get install prometheus-alertmanager)"
        )


class Stack:
    """Starts the processes of one test module and stops them all at its end."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.processes: list[Process] = []
        self.runners: list[web.AppRunner] = []

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Process:
        log_path = self.dir / f"{name}.log"
        log = log_path.open("w", encoding="utf-8")
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env=env,
        )
        process = Process(name, popen, log_path, log)
        self.processes.append(process)
        return process

    async def ready(self, process: Process, url: str) -> None:
        """Wait until ``url`` answers 200 (bounded); fail with the log if the process died."""
        deadline = time.monotonic() + START_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if process.popen.poll() is not None:
                    pytest.fail(f"{process.name} exited early\n{process.log_tail()}")
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)  # polling a starting process, bounded by the deadline
        pytest.fail(f"{process.name} not ready at {url} in {START_S} s\n{process.log_tail()}")

    def log_tails(self) -> str:
        return "\n".join(process.log_tail() for process in self.processes)

    # --- the sidecar and its simulated upstream ---------------------------------------------------

    async def simulator(self, *args: str) -> str:
        """``llm-sidecar mock-upstream`` with the given options; returns its /v1 URL."""
        port = free_port()
        process = self.spawn(
            "simulator",
            [sys.executable, "-m", "sidecar", "mock-upstream", "--port", str(port), *args],
        )
        url = f"http://127.0.0.1:{port}"
        await self.ready(process, f"{url}/v1/models")
        return f"{url}/v1"

    async def sidecar(self, config: dict[str, Any]) -> str:
        """``llm-sidecar serve`` with this config (YAML file); returns its base URL."""
        port = free_port()
        path = self.dir / "sidecar.yaml"
        # Key order matters: the first provider is the default one.
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        # The config file alone decides: no OTLP export (the collector is not what these tests
        # are about) and no REDIS_URL / DATABASE_URL from the environment overriding it.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("OTEL_") and key not in {"REDIS_URL", "DATABASE_URL"}
        }
        process = self.spawn(
            "sidecar",
            [sys.executable, "-m", "sidecar", "serve", "--config", str(path), "--port", str(port)],
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        await self.ready(process, f"{url}/healthz")
        return url

    # --- Prometheus and Alertmanager --------------------------------------------------------------

    async def prometheus(
        self, scrape: str, rule_files: list[Path], alertmanager: str | None = None
    ) -> str:
        """Prometheus scraping ``scrape`` (host:port) every second, evaluating rules every
        second; returns its base URL."""
        require_prometheus_and_alertmanager()
        assert PROMETHEUS is not None
        port = free_port()
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": "llm-sidecar", "static_configs": [{"targets": [scrape]}]}
            ],
        }
        if alertmanager is not None:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
            }
        path = self.dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        process = self.spawn(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={path}",
                f"--storage.tsdb.path={self.dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
        )
        url = f"http://127.0.0.1:{port}"
        await self.ready(process, f"{url}/-/ready")
        return url

    async def alertmanager(self, webhook_url: str) -> str:
        """Alertmanager with the shipped alerts/alertmanager.yml, its webhook pointed at
        ``webhook_url`` and its waits cut to a second; returns host:port."""
        require_prometheus_and_alertmanager()
        assert ALERTMANAGER is not None
        config = yaml.safe_load(queries.ALERTMANAGER.read_text(encoding="utf-8"))
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = webhook_url
        config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1m")
        path = self.dir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        process = self.spawn(
            "alertmanager",
            [
                ALERTMANAGER,
                f"--config.file={path}",
                f"--storage.path={self.dir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # one instance, no gossip port
                "--log.level=warn",
            ],
        )
        await self.ready(process, f"http://127.0.0.1:{port}/-/ready")
        return f"127.0.0.1:{port}"

    async def webhook(self) -> Webhook:
        """An aiohttp server in this test's event loop, recording Alertmanager's posts."""
        receiver = Webhook()
        app = web.Application()
        app.router.add_post("/alerts", receiver.receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self.runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        receiver.url = f"http://{host}:{port}/alerts"
        return receiver

    async def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        for runner in self.runners:
            await runner.cleanup()


def rules_without_for(directory: Path) -> Path:
    """alerts/sidecar.rules.yml with every ``for:`` dropped, so alerts fire on the first
    evaluation that finds their condition true: the same expressions, minus the minutes a test
    cannot wait."""
    document = yaml.safe_load(queries.RULES.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    path = directory / "sidecar.rules.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    started = Stack(tmp_path_factory.mktemp("deploy"))
    try:
        yield started
    finally:
        await started.close()
