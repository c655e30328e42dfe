"""Counters that survive their Redis: fail open to an in-process twin, behind a breaker.

A Redis command that fails or times out (``backends.redis_timeout_ms``) trips the breaker: for
``cooldown_s`` every decision goes straight to the in-process counters (same limits, but per
instance), so a dead Redis costs nothing per request — no connect attempt, no timeout. After
the cooldown one decision tries Redis again. The switch is logged once each way and shown by
``health()`` (degraded), so ``/readyz`` says the limits are per instance for now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from redis.exceptions import RedisError

from sidecar.backends import Admission, Counters, Health, Limit, Tally, Window
from sidecar.backends.memory import MemoryCounters

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]


class GuardedCounters:
    def __init__(
        self,
        primary: Counters,
        *,
        fallback: Counters | None = None,
        cooldown_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback or MemoryCounters()
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._down_until = 0.0
        self._error: str | None = None

    @property
    def degraded(self) -> bool:
        """Decisions are being made in process (the primary failed recently)."""
        return self._error is not None

    async def _call(
        self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        if self.clock() < self._down_until:
            return await fallback()
        try:
            result = await primary()
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc)
            return await fallback()
        if self._error is not None:
            log.warning("Redis answers again; limits are shared across instances again")
            self._error = None
        return result

    def _trip(self, exc: BaseException) -> None:
        self._down_until = self.clock() + self.cooldown_s
        if self._error is None:
            log.warning(
                "Redis failed (%s); limiting in process (per instance) until it answers again",
                type(exc).__name__,
            )
        self._error = f"{type(exc).__name__}: {exc}"

    async def admit(
        self, limits: Sequence[Limit], tally: Tally | None = None, also_get: Sequence[str] = ()
    ) -> Admission:
        return await self._call(
            lambda: self.primary.admit(limits, tally, also_get),
            lambda: self.fallback.admit(limits, tally),
        )

    async def peek(self, limits: Sequence[Limit]) -> list[Window]:
        return await self._call(
            lambda: self.primary.peek(limits), lambda: self.fallback.peek(limits)
        )

    async def settle(self, corrections: Sequence[tuple[Limit, int]]) -> None:
        await self._call(
            lambda: self.primary.settle(corrections), lambda: self.fallback.settle(corrections)
        )

    async def tallies(self, key: str) -> dict[str, int]:
        return await self._call(
            lambda: self.primary.tallies(key), lambda: self.fallback.tallies(key)
        )

    async def add(self, key: str, amount: int, *, ttl_s: float) -> int:
        return await self._call(
            lambda: self.primary.add(key, amount, ttl_s=ttl_s),
            lambda: self.fallback.add(key, amount, ttl_s=ttl_s),
        )

    async def reserve(self, key: str, amount: int, *, limit: int, ttl_s: float) -> tuple[bool, int]:
        return await self._call(
            lambda: self.primary.reserve(key, amount, limit=limit, ttl_s=ttl_s),
            lambda: self.fallback.reserve(key, amount, limit=limit, ttl_s=ttl_s),
        )

    async def read(self, key: str) -> int:
        return await self._call(lambda: self.primary.read(key), lambda: self.fallback.read(key))

    async def health(self) -> Health:
        health = await self.primary.health()
        if (
            health.status == "healthy"
            and self._error is not None
            and self.clock() < self._down_until
        ):
            return Health(
                "degraded", f"failing open in process: {self._error}", None, health.backend
            )
        if health.status != "healthy":
            message = f"{health.message}; limiting in process (per instance) meanwhile"
            return Health("degraded", message, health.latency_ms, health.backend)
        return health

    async def close(self) -> None:
        await self.primary.close()
        await self.fallback.close()
