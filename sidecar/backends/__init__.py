"""Shared state that outlives a request, behind small protocols.

=============  ===========================  ==================================  ==================
protocol       used for                     embedded default (one instance)     shared (config)
=============  ===========================  ==================================  ==================
Counters       rate limits, budgets,        :mod:`.memory` (monotonic clock)    Redis (Lua, TIME)
               duplicate guards
CacheStore     response cache               :mod:`.memory` (LRU, byte-bounded)  Redis
UsageStore     usage records, reports       SQLite (WAL) file                   PostgreSQL
JobQueue       durable async jobs           :mod:`.memory`                      Redis (BullMQ)
=============  ===========================  ==================================  ==================

``redis_url`` chooses Redis for counters, cache and jobs; ``database_url`` chooses the usage
store. Each backend reports its :class:`Health`; ``/readyz`` aggregates them. A backend that
cannot be reached at start is logged and reported, never fatal: it reconnects on its own.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Status = Literal["healthy", "degraded", "unhealthy"]


@dataclass(frozen=True, slots=True)
class Health:
    status: Status
    message: str
    latency_ms: float | None = None
    backend: str = "in-process"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "backend": self.backend,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit to check: at most ``limit`` units of ``cost`` in any ``window_s`` seconds.

    ``log`` is an exact sliding log (one entry per unit: for request counts); ``gcra`` is the
    generic cell rate algorithm (one number per key: for token counts, where a log would hold
    thousands of entries), which never admits more than ``limit`` in a window either. ``sum`` is
    a running total with no window (a monthly budget in micro-dollars): at most ``limit`` in all,
    ``window_s`` is how long the counter lives; its window's ``count`` is the total.
    """

    key: str
    limit: int
    window_s: float
    cost: int = 1
    kind: Literal["log", "gcra", "sum"] = "log"


@dataclass(frozen=True, slots=True)
class Window:
    """Where one limit stands after a decision."""

    allowed: bool  # this limit had room (the decision admits only if every limit had)
    count: int  # units inside the window, including this decision's when admitted
    limit: int
    reset_s: float  # until the window has room for this cost again (0 when it has room now)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


@dataclass(frozen=True, slots=True)
class Tally:
    """Analytics kept with a decision: ``{field}:requests`` and ``{field}:limited`` in a hash."""

    key: str
    field: str
    ttl_s: float = 86400.0


@dataclass(frozen=True, slots=True)
class Admission:
    windows: list[Window]  # one per limit, in order
    # Values read in the same round trip (``also_get``); absent keys were not read.
    fetched: dict[str, bytes | None] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return all(window.allowed for window in self.windows)


class Counters(Protocol):
    @property
    def degraded(self) -> bool:
        """Decisions are made in process for now because the shared store failed."""
        ...

    async def admit(
        self, limits: Sequence[Limit], tally: Tally | None = None, also_get: Sequence[str] = ()
    ) -> Admission:
        """Check every limit and, only if all have room, record them: atomically, all or
        nothing, in one round trip — which may also read ``also_get`` keys of a store sharing
        it (the cache lookup rides along with the rate-limit check)."""
        ...

    async def peek(self, limits: Sequence[Limit]) -> list[Window]:
        """Where the limits stand, recording nothing."""
        ...

    async def settle(self, corrections: Sequence[tuple[Limit, int]]) -> None:
        """Correct ``gcra`` reservations by their deltas (negative: give back), in one go."""
        ...

    async def tallies(self, key: str) -> dict[str, int]: ...

    async def add(self, key: str, amount: int, *, ttl_s: float) -> int:
        """Add to a plain counter that expires ``ttl_s`` after its last change; the new total."""
        ...

    async def reserve(self, key: str, amount: int, *, limit: int, ttl_s: float) -> tuple[bool, int]:
        """Add ``amount`` only if the total stays within ``limit`` (atomically); whether it was
        added, and the total afterwards (budgets: concurrent requests cannot overshoot)."""
        ...

    async def read(self, key: str) -> int: ...
    async def health(self) -> Health: ...
    async def close(self) -> None: ...


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None: ...
    async def clear(self, prefix: str) -> int:
        """Remove every entry whose key starts with ``prefix``; how many were removed."""
        ...

    async def health(self) -> Health: ...
    async def close(self) -> None: ...


@dataclass(slots=True)
class UsageRecord:
    """One model call as it is billed. Costs are integer micro-dollars (None: unpriced)."""

    time: datetime
    request_id: str
    user: str
    operation: str
    model_requested: str
    model_served: str
    provider: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cost_micros: int | None = None
    cache_hit: bool = False
    saved_micros: int = 0
    fallback: str | None = None
    outcome: str = "success"
    estimated: bool = False  # usage estimated (client left before the final chunk)
    upstream_calls: int = 1  # attempts sent upstream: retries and fallbacks add to it, a hit is 0
    record_id: str = field(default_factory=lambda: os.urandom(12).hex())  # idempotent writes


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """A user's records of one operation answered by one model, summed by the database."""

    operation: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    images: int
    cost_micros: int  # of the priced records
    unpriced: int  # records whose cost is unknown (the model had no price)
    cache_hits: int
    saved_micros: int  # what the cache hits would have cost
    fallbacks: int  # records answered by a fallback model
    fallback_micros: int
    failed: int  # records whose outcome is not a success (a stream cut mid-way is billed)
    failed_micros: int
    retried: int  # records that took more than one upstream call
    extra_calls: int  # upstream calls beyond the first, summed


class UsageStore(Protocol):
    async def write(self, records: Sequence[UsageRecord]) -> None:
        """Store records durably (committed when this returns)."""
        ...

    async def breakdown(self, user: str, since: datetime, until: datetime) -> list[UsageGroup]:
        """``user``'s records in [since, until) by operation and model, most costly first."""
        ...

    async def health(self) -> Health: ...
    async def close(self) -> None: ...


JobState = Literal["waiting", "active", "completed", "failed", "delayed"]
JOB_STATES: tuple[JobState, ...] = ("waiting", "active", "completed", "failed", "delayed")
# The job queues by priority, named as BullMQ apps know them.
JOB_QUEUES: dict[Literal["high", "normal", "batch"], str] = {
    "high": "ai-high-priority",
    "normal": "ai-normal",
    "batch": "ai-batch",
}


@dataclass(slots=True)
class JobInfo:
    """A job as its queue holds it. ``id`` names the queue too (``ai-normal:j5f0c...``)."""

    id: str
    queue: str
    name: str
    data: dict[str, Any]
    state: JobState
    attempts: int = 0  # attempts made: each completion, failure or retry counts one
    max_attempts: int = 1
    result: Any = None
    error: str | None = None


class JobFailed(Exception):
    """A job's attempt failed. The job is retried after its backoff while it has attempts left,
    unless ``final``: then nothing a retry could change would help (bad input, no quota) and it
    fails now, its remaining attempts unused (BullMQ's ``UnrecoverableError``)."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class JobDeferred(Exception):
    """Not now: run the job again after ``delay_s`` without counting an attempt (the sidecar's
    own rate limit said when there is room)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(f"deferred {delay_s:.3f}s")
        self.delay_s = delay_s


class JobQueueUnavailable(Exception):
    """The queue cannot take or show jobs now (Redis unreachable, in-process queue full)."""


# What a worker runs for each job: its result (kept as the job's), or JobFailed / JobDeferred.
Process = Callable[[JobInfo], Awaitable[Any]]


class Consumer(Protocol):
    async def close(self, timeout_s: float) -> None:
        """Stop taking jobs, give the running ones ``timeout_s`` to finish, then abandon them: a
        durable queue hands an abandoned job to another worker once its lock expires."""
        ...


class JobQueue(Protocol):
    """Named queues of jobs with BullMQ's semantics: attempts, exponential backoff between them,
    delays, priorities (1 first; 0, the default, before any), completed jobs kept for a while
    and failed ones kept."""

    async def add(
        self,
        queue: str,
        name: str,
        data: dict[str, Any],
        *,
        priority: int = 0,
        delay_ms: int = 0,
        attempts: int = 1,
        backoff_ms: int = 0,  # before retry n (1, 2, ...): backoff_ms * 2^(n-1)
    ) -> str:
        """Enqueue a job; its id. Raises JobQueueUnavailable."""
        ...

    async def get(self, job_id: str) -> JobInfo | None:
        """The job, or None when there is none by that id. Raises JobQueueUnavailable."""
        ...

    async def counts(self, queues: Sequence[str]) -> dict[str, dict[JobState, int]]:
        """Jobs per state of each named queue, every state present."""
        ...

    async def consume(self, queue: str, process: Process, *, concurrency: int) -> Consumer:
        """Run ``process`` on the jobs of ``queue``, up to ``concurrency`` at once."""
        ...

    async def health(self) -> Health: ...
    async def close(self) -> None: ...


@dataclass(slots=True)
class Backends:
    counters: Counters
    cache: CacheStore
    usage: UsageStore
    jobs: JobQueue
    # Closed with the backends but not one of them (the Redis client the others share).
    closers: list[Any] = field(default_factory=list)
    # The shared Redis itself, pinged for /readyz's ``redis`` entry; None without redis_url.
    redis_ping: Callable[[], Awaitable[Health]] | None = None

    def named(self) -> Mapping[str, Counters | CacheStore | UsageStore | JobQueue]:
        """The backends by the name ``/readyz`` reports them under."""
        return {
            "rate_limit": self.counters,
            "cache": self.cache,
            "database": self.usage,
            "queues": self.jobs,
        }

    async def health(self) -> dict[str, Health]:
        health = {"redis": await self._redis_health()}
        health.update({name: await backend.health() for name, backend in self.named().items()})
        return health

    async def _redis_health(self) -> Health:
        if self.redis_ping is None:
            return Health("healthy", "not configured (no redis_url): limits, cache and queues are "
                          "this process's own")  # fmt: skip
        return await self.redis_ping()

    async def close(self) -> None:
        for backend in self.named().values():
            await backend.close()
        for closer in self.closers:
            await closer()
