"""Real Redis and PostgreSQL for backend tests, each test in its own key prefix or database.

Outside CI a service that is not running skips its tests with the reason; under CI
(``CI=true``) ``scripts/services`` has already failed the run if one could not be started.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("SIDECAR_TEST_REDIS", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get("SIDECAR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


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


@pytest.fixture
async def key_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A fresh key prefix; every key under it is deleted after the test."""
    prefix = f"sidecar-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    async for key in redis_client.scan_iter(match=prefix + "*", count=500):
        await redis_client.unlink(key)


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A scratch PostgreSQL database, dropped afterwards."""
    name = f"sidecar_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not available at {PG_ADMIN_URL}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
