"""Limits shared through Redis hold across sidecar processes, and survive Redis going away.

These tests run real ``llm-sidecar serve`` processes and a Redis server of their own: they take
a few seconds each, bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml
from aiohttp.test_utils import TestServer

from tests.helpers import REDIS_URL, MakeSidecar

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(url: str, timeout_s: float = 20.0) -> None:
    """Poll until the URL answers 200 (bounded)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout_s / 0.1)):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def sidecars(config: Mapping[str, object], tmp_path: Path, count: int) -> Iterator[list[str]]:
    """``count`` sidecar processes with one config; their base URLs."""
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve", "--config", str(path), "--port", str(p)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


async def test_four_sidecar_processes_admit_exactly_the_limit_together(
    upstream: TestServer, key_prefix: str, tmp_path: Path
) -> None:
    """100 concurrent requests for one user spread over four sidecars sharing Redis, limit 5:
    exactly 5 are admitted, whichever process they reach."""
    config = {
        "providers": {"sim": {"base_url": str(upstream.make_url("/v1")), "api_key_env": None}},
        "redis_url": REDIS_URL,
        # A generous command timeout: four processes on two loaded cores must not fail open.
        "backends": {"redis_prefix": key_prefix, "redis_timeout_ms": 1000},
        "database_url": f"sqlite:///{tmp_path}/usage.db",
        "operations": {"chat": {"rate_limit": {"requests": 5, "per_s": 60}, "fallbacks": []}},
    }
    with sidecars(config, tmp_path, 4) as urls:
        for url in urls:
            await wait_for(f"{url}/healthz")

        async def post(i: int) -> int:
            url = f"{urls[i % 4]}/v1/chat/completions"
            async with http.post(url, json=BODY, headers={"X-Sidecar-User": "dana"}) as resp:
                await resp.read()
                return resp.status

        async with aiohttp.ClientSession() as http:
            statuses = await asyncio.gather(*(post(i) for i in range(100)))
    assert statuses.count(200) == 5
    assert statuses.count(429) == 95


class RedisServer:
    """A Redis server of the test's own, which the test may stop and start again."""

    def __init__(self, executable: str, port: int, cwd: Path) -> None:
        self.executable, self.port, self.cwd = executable, port, cwd
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL, cwd=self.cwd,
        )  # fmt: skip
        client = aioredis.from_url(self.url)
        try:
            for _ in range(100):
                with contextlib.suppress(OSError, aioredis.ConnectionError):
                    await client.ping()
                    return
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(executable, free_port(), tmp_path)
    await server.start()
    yield server
    await server.kill()


async def test_limits_survive_redis_dying_and_return_when_it_comes_back(
    upstream: TestServer,
    make_sidecar: MakeSidecar,
    own_redis: RedisServer,
) -> None:
    """Redis killed mid-run: no 5xx, the limit still applies (in process), readiness degraded;
    Redis back: limits are shared again and readiness recovers."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        redis_url=own_redis.url,
        backends={"redis_cooldown_s": 0.2},
        operations={"chat": {"rate_limit": {"requests": 3, "per_s": 60}, "fallbacks": []}},
    )

    async with aiohttp.ClientSession() as http:

        async def chat() -> int:
            async with http.post(sidecar.make_url("/v1/chat/completions"), json=BODY) as resp:
                await resp.read()
                return resp.status

        async def rate_limit_status() -> str:
            async with http.get(sidecar.make_url("/readyz")) as resp:
                return str((await resp.json())["services"]["rate_limit"]["status"])

        assert [await chat() for _ in range(2)] == [200, 200]
        await own_redis.kill()
        down = [await chat() for _ in range(4)]
        assert down == [200, 200, 200, 429]  # the in-process twin enforces the same limit
        assert await rate_limit_status() == "degraded"

        await own_redis.start()
        for _ in range(200):  # bounded: until Redis answers and the breaker lets a call through
            if await rate_limit_status() == "healthy" and await chat() == 200:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the limiter did not go back to Redis")
        assert await rate_limit_status() == "healthy"
