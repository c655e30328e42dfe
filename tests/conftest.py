"""Shared fixtures: a real simulated upstream and a real sidecar, both over loopback HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.exceptions import RedisError

from sidecar.backends import UsageStore
from sidecar.backends.setup import open_usage_store
from sidecar.runtime import Overrides
from sidecar.server import create_app
from sidecar.simulator import Simulator, SimulatorConfig
from tests.helpers import (
    APP_KEY,
    PROVIDER_KEY,
    REDIS_URL,
    ServerFactory,
    Sleeps,
    scratch_database,
    sidecar_settings,
)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SimulatorConfig(seed=11))


@pytest.fixture
async def upstream(sim: Simulator, aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(sim.app())


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIDECAR_TEST_KEY", PROVIDER_KEY)
    return PROVIDER_KEY


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_sidecar(
    aiohttp_server: ServerFactory, provider_key: str, sleeps: Sleeps
) -> Callable[..., Awaitable[TestServer]]:
    """Start a sidecar in front of an upstream base URL, with config overrides.

    Retry waits go to the ``sleeps`` recorder unless ``real_sleep=True``.
    """

    async def make(upstream_url: str, *, real_sleep: bool = False, **overrides: Any) -> TestServer:
        sleep = None if real_sleep else sleeps
        app = create_app(sidecar_settings(upstream_url, **overrides), Overrides(sleep=sleep))
        return await aiohttp_server(app)

    return make


@pytest.fixture
async def sidecar(
    upstream: TestServer, make_sidecar: Callable[..., Awaitable[TestServer]]
) -> TestServer:
    return await make_sidecar(str(upstream.make_url("/v1")))


@pytest.fixture
async def client(sidecar: TestServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real openai SDK, pointed at the sidecar, with its own retries off."""
    async with openai.AsyncOpenAI(
        base_url=str(sidecar.make_url("/v1")), api_key=APP_KEY, max_retries=0
    ) as sdk:
        yield sdk


def app_with(routes: web.RouteTableDef) -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis is not available at {REDIS_URL}: {exc}")
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def redis_prefixes() -> Iterator[list[str]]:
    """Key prefixes whose keys are deleted after the test. Autouse, so it is set up before
    and torn down after every other fixture: the keys go once the sidecars that write under
    them, and the work they finish at shutdown (budget corrections, jobs), are gone."""
    prefixes: list[str] = []
    yield prefixes
    if not prefixes:
        return
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=prefix + "*", count=500))
            if keys:
                client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture
def key_prefix(redis_client: aioredis.Redis, redis_prefixes: list[str]) -> str:
    """A fresh key prefix; every key under it is deleted after the test."""
    prefix = f"sidecar-test:{uuid.uuid4().hex[:12]}:"
    redis_prefixes.append(prefix)
    return prefix


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A usage database of each kind: a SQLite file, a scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/usage.db"
    else:
        async with scratch_database() as url:
            yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[UsageStore]:
    opened = await open_usage_store(database_url)
    yield opened
    await opened.close()


@pytest.fixture(params=["memory", "redis"])
def shared_state(request: pytest.FixtureRequest, key_prefix: str) -> dict[str, Any]:
    """Sidecar settings for each backend: in process, or Redis under this test's key prefix."""
    if request.param == "memory":
        return {}
    prefix = key_prefix.rstrip(":")  # BullMQ adds its own ':'
    return {
        "redis_url": REDIS_URL,
        "backends": {"redis_prefix": key_prefix},
        "jobs": {"prefix": prefix},
    }
