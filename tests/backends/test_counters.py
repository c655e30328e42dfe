"""Counters: exact sliding windows and expiring counters, in-process and in Redis alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sidecar.backends import Counters
from sidecar.backends.memory import MemoryCounters
from sidecar.backends.redis import RedisCounters
from tests.backends.conftest import REDIS_URL


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def counters(
    request: pytest.FixtureRequest, key_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[Counters, str]]:
    if request.param == "memory":
        yield MemoryCounters(), key_prefix
    else:
        yield RedisCounters(redis_client, REDIS_URL), key_prefix


async def test_a_window_admits_exactly_its_limit(counters: tuple[Counters, str]) -> None:
    """Five per minute: five hits are admitted, the sixth is refused with a reset time."""
    backend, prefix = counters
    key = prefix + "{alice}:chat"
    decisions = [await backend.hit(key, limit=5, window_s=60) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert 59 < decisions[-1].reset_s <= 60


async def test_a_cost_larger_than_what_is_left_is_refused_whole(
    counters: tuple[Counters, str],
) -> None:
    """Token-style hits: 8 of 10 used, a hit of 3 is refused and records nothing."""
    backend, prefix = counters
    key = prefix + "{bob}:tokens"
    assert (await backend.hit(key, limit=10, window_s=60, cost=8)).allowed
    refused = await backend.hit(key, limit=10, window_s=60, cost=3)
    assert not refused.allowed
    assert refused.count == 8
    assert (await backend.hit(key, limit=10, window_s=60, cost=2)).allowed


async def test_concurrent_hits_from_two_instances_never_exceed_the_limit(
    key_prefix: str, redis_client: aioredis.Redis
) -> None:
    """Two sidecars (two Redis clients) racing 60 hits at a limit of 20 admit exactly 20."""
    other = aioredis.from_url(REDIS_URL)
    try:
        first, second = RedisCounters(redis_client, REDIS_URL), RedisCounters(other, REDIS_URL)
        key = key_prefix + "{carol}:chat"
        hits = [(first if i % 2 else second).hit(key, limit=20, window_s=60) for i in range(60)]
        decisions = await asyncio.gather(*hits)
    finally:
        await other.aclose()
    assert sum(d.allowed for d in decisions) == 20


async def test_redis_window_keys_expire_with_their_window(
    key_prefix: str, redis_client: aioredis.Redis
) -> None:
    """Every key the script writes carries an expiry no longer than the window."""
    backend = RedisCounters(redis_client, REDIS_URL)
    key = key_prefix + "{dave}:chat"
    await backend.hit(key, limit=3, window_s=30)
    assert 0 < await redis_client.pttl(key) <= 30_000


async def test_the_in_process_window_slides() -> None:
    """A hit leaves the window exactly window_s after it was made, not at a fixed boundary."""
    clock = Clock()
    backend = MemoryCounters(clock=clock)
    assert (await backend.hit("k", limit=2, window_s=10)).allowed
    clock.now += 6
    assert (await backend.hit("k", limit=2, window_s=10)).allowed
    clock.now += 3.9  # 9.9 s after the first hit: both still inside
    assert not (await backend.hit("k", limit=2, window_s=10)).allowed
    clock.now += 0.1  # the first hit has left; the second stays for 6 s more
    decision = await backend.hit("k", limit=2, window_s=10)
    assert decision.allowed
    assert decision.reset_s == pytest.approx(6.0)


async def test_counters_add_up_and_expire(counters: tuple[Counters, str]) -> None:
    """add() returns the running total; read() sees it; an unknown key reads as 0."""
    backend, prefix = counters
    key = prefix + "{erin}:spent"
    assert await backend.add(key, 1500, ttl_s=60) == 1500
    assert await backend.add(key, 250, ttl_s=60) == 1750
    assert await backend.read(key) == 1750
    assert await backend.read(prefix + "{erin}:other") == 0


async def test_in_process_counters_expire_and_stay_bounded() -> None:
    """Expired counters read 0 and idle keys are forgotten past max_keys."""
    clock = Clock()
    backend = MemoryCounters(max_keys=10, clock=clock)
    await backend.add("spent", 5, ttl_s=1)
    clock.now += 1
    assert await backend.read("spent") == 0
    for i in range(100):
        await backend.hit(f"user-{i}", limit=1, window_s=1)
        clock.now += 1
    assert len(backend._logs) <= 10
