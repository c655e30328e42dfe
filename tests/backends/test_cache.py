"""Cache stores: values with expiry, prefix invalidation, and a size bound in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sidecar.backends import CacheStore
from sidecar.backends.memory import MemoryCache
from sidecar.backends.redis import RedisCache
from sidecar.backends.resp import PipelinedRedis
from tests.helpers import REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def cache(
    request: pytest.FixtureRequest, key_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[CacheStore, str]]:
    if request.param == "memory":
        yield MemoryCache(), key_prefix
    else:
        store = RedisCache(redis_client, REDIS_URL, PipelinedRedis(REDIS_URL, timeout_s=1.0))
        yield store, key_prefix
        await store.close()


async def test_values_round_trip_and_clear_by_prefix(cache: tuple[CacheStore, str]) -> None:
    """set/get return the bytes; clear(prefix) removes exactly the entries under it."""
    store, prefix = cache
    await store.set(prefix + "chat:a", b"alpha", ttl_s=60)
    await store.set(prefix + "chat:b", b"beta", ttl_s=60)
    await store.set(prefix + "embedding:a", b"vector", ttl_s=60)
    assert await store.get(prefix + "chat:a") == b"alpha"
    assert await store.clear(prefix + "chat:") == 2
    assert await store.get(prefix + "chat:b") is None
    assert await store.get(prefix + "embedding:a") == b"vector"


async def test_a_prefix_with_glob_characters_matches_only_itself(
    cache: tuple[CacheStore, str],
) -> None:
    """A '*' in an operation name is literal, not a wildcard that clears everything."""
    store, prefix = cache
    await store.set(prefix + "op*:x", b"1", ttl_s=60)
    await store.set(prefix + "opa:x", b"2", ttl_s=60)
    assert await store.clear(prefix + "op*:") == 1
    assert await store.get(prefix + "opa:x") == b"2"


async def test_in_process_cache_expires_and_evicts_by_size() -> None:
    """Entries expire after their TTL; past max_bytes the least recently used go first."""
    now = [0.0]
    store = MemoryCache(max_bytes=10, clock=lambda: now[0])
    await store.set("a", b"12345", ttl_s=5)
    await store.set("b", b"12345", ttl_s=50)
    assert await store.get("a") == b"12345"  # a is now the most recently used
    await store.set("c", b"123", ttl_s=50)
    assert await store.get("b") is None
    assert store.size <= 10
    now[0] = 6
    assert await store.get("a") is None
