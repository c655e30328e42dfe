"""Counters: exact sliding windows and expiring counters, in-process and in Redis alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from sidecar.backends import Counters, Limit, Tally, Window
from sidecar.backends.memory import MemoryCounters
from sidecar.backends.redis import RedisCounters
from sidecar.backends.resp import PipelinedRedis
from tests.helpers import REDIS_URL


async def hit(backend: Counters, key: str, limit: int, window_s: float, cost: int = 1) -> Window:
    """One sliding-log limit, admitted or not."""
    (window,) = (await backend.admit([Limit(key, limit, window_s, cost)])).windows
    return window


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
        backend = RedisCounters(redis_client, REDIS_URL, PipelinedRedis(REDIS_URL, timeout_s=1.0))
        yield backend, key_prefix
        await backend.close()


async def test_a_window_admits_exactly_its_limit(counters: tuple[Counters, str]) -> None:
    """Five per minute: five hits are admitted, the sixth is refused with a reset time."""
    backend, prefix = counters
    key = prefix + "{alice}:chat"
    decisions = [await hit(backend, key, 5, 60) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert 59 < decisions[-1].reset_s <= 60


async def test_a_cost_larger_than_what_is_left_is_refused_whole(
    counters: tuple[Counters, str],
) -> None:
    """Token-style hits: 8 of 10 used, a hit of 3 is refused and records nothing."""
    backend, prefix = counters
    key = prefix + "{bob}:tokens"
    assert (await hit(backend, key, 10, 60, 8)).allowed
    refused = await hit(backend, key, 10, 60, 3)
    assert not refused.allowed
    assert refused.count == 8
    assert (await hit(backend, key, 10, 60, 2)).allowed


async def test_concurrent_hits_from_two_instances_never_exceed_the_limit(
    key_prefix: str, redis_client: aioredis.Redis
) -> None:
    """Two sidecars (two Redis clients) racing 60 hits at a limit of 20 admit exactly 20."""
    other = aioredis.from_url(REDIS_URL)
    first, second = (
        RedisCounters(redis_client, REDIS_URL, PipelinedRedis(REDIS_URL, timeout_s=1.0)),
        RedisCounters(other, REDIS_URL, PipelinedRedis(REDIS_URL, timeout_s=1.0)),
    )
    try:
        key = key_prefix + "{carol}:chat"
        hits = [hit(first if i % 2 else second, key, 20, 60) for i in range(60)]
        decisions = await asyncio.gather(*hits)
    finally:
        await first.close()
        await second.close()
        await other.aclose()
    assert sum(d.allowed for d in decisions) == 20


async def test_redis_window_keys_expire_with_their_window(
    key_prefix: str, redis_client: aioredis.Redis
) -> None:
    """Every key the script writes carries an expiry no longer than the window."""
    backend = RedisCounters(redis_client, REDIS_URL, PipelinedRedis(REDIS_URL, timeout_s=1.0))
    key = key_prefix + "{dave}:chat"
    await hit(backend, key, 3, 30)
    await backend.close()
    assert 0 < await redis_client.pttl(key) <= 30_000


async def test_the_in_process_window_slides() -> None:
    """A hit leaves the window exactly window_s after it was made, not at a fixed boundary."""
    clock = Clock()
    backend = MemoryCounters(clock=clock)
    assert (await hit(backend, "k", 2, 10)).allowed
    clock.now += 6
    assert (await hit(backend, "k", 2, 10)).allowed
    clock.now += 3.9  # 9.9 s after the first hit: both still inside
    assert not (await hit(backend, "k", 2, 10)).allowed
    clock.now += 0.1  # the first hit has left; the second stays for 6 s more
    decision = await hit(backend, "k", 2, 10)
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
        await hit(backend, f"user-{i}", 1, 1)
        clock.now += 1
    assert len(backend._logs) <= 10


async def test_a_decision_over_several_limits_records_all_or_nothing(
    counters: tuple[Counters, str],
) -> None:
    """Requests have room but tokens do not: neither is recorded, and the tally says limited."""
    backend, prefix = counters
    requests = Limit(prefix + "{frank}:chat", 10, 60)
    tokens = Limit(prefix + "{frank}:tokens", 1000, 60, cost=800, kind="gcra")
    tally = Tally(prefix + "{frank}:tally", "chat")
    assert (await backend.admit([requests, tokens], tally)).allowed
    admission = await backend.admit([requests, replace(tokens, cost=300)], tally)
    refused = admission.windows
    assert not admission.allowed
    assert [w.allowed for w in refused] == [True, False]  # each limit's own verdict
    assert refused[0].count == 1  # the refused request was not recorded
    assert refused[1].count == 800
    assert 0 < refused[1].reset_s <= 60 * 100 / 1000 + 0.5  # until 100 tokens are free again
    assert await backend.tallies(prefix + "{frank}:tally") == {
        "chat:requests": 2,
        "chat:limited": 1,
    }


async def test_tokens_settle_to_the_real_usage(counters: tuple[Counters, str]) -> None:
    """A reservation of 900 tokens that used 100 gives 800 back to the window."""
    backend, prefix = counters
    tokens = Limit(prefix + "{gina}:tokens", 1000, 60, cost=900, kind="gcra")
    await backend.admit([tokens])
    assert not (await backend.admit([replace(tokens, cost=500)])).allowed
    await backend.settle([(tokens, 100 - 900)])
    (window,) = (await backend.admit([replace(tokens, cost=500)])).windows
    assert window.allowed
    assert 595 <= window.count <= 601


async def test_peek_records_nothing(counters: tuple[Counters, str]) -> None:
    """peek() shows the window without spending from it."""
    backend, prefix = counters
    requests = Limit(prefix + "{hal}:chat", 2, 60)
    await backend.admit([requests])
    for _ in range(3):
        (window,) = await backend.peek([requests])
        assert (window.count, window.remaining) == (1, 1)


async def test_a_lookup_rides_along_with_the_decision_in_redis(
    key_prefix: str, redis_client: aioredis.Redis
) -> None:
    """also_get reads cache keys in the same round trip (a pipeline) as the limit script."""
    backend = RedisCounters(redis_client, REDIS_URL, PipelinedRedis(REDIS_URL, timeout_s=1.0))
    await redis_client.set(key_prefix + "cache:a", b"cached answer")
    admission = await backend.admit(
        [Limit(key_prefix + "{ivy}:chat", 5, 60)],
        also_get=[key_prefix + "cache:a", key_prefix + "cache:missing"],
    )
    await backend.close()
    assert admission.allowed
    assert admission.fetched == {
        key_prefix + "cache:a": b"cached answer",
        key_prefix + "cache:missing": None,
    }


async def test_a_reservation_never_takes_a_counter_past_its_limit(
    counters: tuple[Counters, str],
) -> None:
    """50 concurrent reservations of 3 against a limit of 30: exactly 10 fit, total 30."""
    backend, prefix = counters
    key = prefix + "{kim}:budget"
    results = await asyncio.gather(
        *(backend.reserve(key, 3, limit=30, ttl_s=60) for _ in range(50))
    )
    assert sum(added for added, _ in results) == 10
    assert await backend.read(key) == 30
    assert await backend.add(key, -5, ttl_s=60) == 25  # settling gives money back
    assert (await backend.reserve(key, 5, limit=30, ttl_s=60)) == (True, 30)
