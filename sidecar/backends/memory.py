"""In-process backends: the embedded default for a single sidecar (no Redis).

Same semantics as the Redis ones for one instance. Everything is bounded: keys that come from
clients (users, models) are forgotten when idle, and the cache evicts by size.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sidecar.backends import Admission, Health, JobInfo, JobState, Limit, Tally, Window

Clock = Callable[[], float]

HEALTHY = Health("healthy", "in-process")


class MemoryCounters:
    """Exact sliding logs, GCRA cells and expiring counters in dicts, on a monotonic clock."""

    def __init__(self, *, max_keys: int = 100_000, clock: Clock = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._logs: dict[str, tuple[deque[float], float]] = {}  # key -> (hit times, window)
        self._cells: dict[str, float] = {}  # key -> GCRA theoretical arrival time
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (value, expires at)
        self._tallies: dict[str, dict[str, int]] = {}

    @property
    def degraded(self) -> bool:
        return False

    async def admit(
        self, limits: Sequence[Limit], tally: Tally | None = None, also_get: Sequence[str] = ()
    ) -> Admission:
        """``also_get`` is ignored: an in-process cache lookup costs no round trip."""
        now = self.clock()
        windows = [self._look(limit, now) for limit in limits]
        allowed = all(window.allowed for window in windows)
        if allowed:  # all or nothing; a refused decision keeps each limit's own verdict
            windows = [self._record(limit, now) for limit in limits]
        if tally is not None:
            self._count(tally, allowed)
        return Admission(windows)

    async def peek(self, limits: Sequence[Limit]) -> list[Window]:
        now = self.clock()
        return [self._look(replace(limit, cost=0), now) for limit in limits]

    async def settle(self, corrections: Sequence[tuple[Limit, int]]) -> None:
        now = self.clock()
        for limit, delta in corrections:
            tat = self._cells.get(limit.key)
            if tat is not None:
                self._cells[limit.key] = max(now, tat + delta * limit.window_s / limit.limit)

    async def tallies(self, key: str) -> dict[str, int]:
        return dict(self._tallies.get(key, {}))

    def _look(self, limit: Limit, now: float) -> Window:
        """The decision for ``limit`` at ``now`` without recording it."""
        if limit.kind == "sum":
            total = self._total(limit.key, now)
            return Window(total + limit.cost <= limit.limit, total, limit.limit, 0.0)
        if limit.kind == "gcra":
            interval = limit.window_s / limit.limit
            tat = max(self._cells.get(limit.key, now), now)
            used = math.ceil((tat - now) / interval - 1e-9)
            over = tat + limit.cost * interval - now - limit.window_s
            return Window(over <= 1e-9, used, limit.limit, max(0.0, over))
        log = self._log(limit, now)
        allowed = len(log) + limit.cost <= limit.limit
        # Admitted: until the oldest hit leaves; refused: until there is room for this cost.
        nth = 0 if allowed else len(log) + limit.cost - limit.limit - 1
        reset = log[nth] + limit.window_s - now if log else 0.0
        return Window(allowed, len(log), limit.limit, max(0.0, reset))

    def _record(self, limit: Limit, now: float) -> Window:
        if limit.kind == "sum":
            total = self._increment(limit.key, limit.cost, limit.window_s, now)
            return Window(True, total, limit.limit, 0.0)
        if limit.kind == "gcra":
            interval = limit.window_s / limit.limit
            tat = max(self._cells.get(limit.key, now), now) + limit.cost * interval
            if limit.key not in self._cells and len(self._cells) >= self.max_keys:
                self._forget_cells(now)
            self._cells[limit.key] = tat
            return Window(True, math.ceil((tat - now) / interval - 1e-9), limit.limit, 0.0)
        log = self._log(limit, now)
        log.extend(itertools.repeat(now, limit.cost))
        return Window(True, len(log), limit.limit, log[0] + limit.window_s - now)

    def _log(self, limit: Limit, now: float) -> deque[float]:
        entry = self._logs.get(limit.key)
        if entry is None:
            if len(self._logs) >= self.max_keys:
                self._forget_idle_logs(now)
            log: deque[float] = deque()
            self._logs[limit.key] = (log, limit.window_s)
            return log
        log = entry[0]
        horizon = now - limit.window_s
        while log and log[0] <= horizon:
            log.popleft()
        return log

    def _count(self, tally: Tally, allowed: bool) -> None:
        if tally.key not in self._tallies and len(self._tallies) >= self.max_keys:
            self._tallies.clear()  # analytics only: losing them beats growing without bound
        fields = self._tallies.setdefault(tally.key, {})
        for name in (f"{tally.field}:requests",) + (() if allowed else (f"{tally.field}:limited",)):
            fields[name] = fields.get(name, 0) + 1

    async def add(self, key: str, amount: int, *, ttl_s: float) -> int:
        return self._increment(key, amount, ttl_s, self.clock())

    async def reserve(self, key: str, amount: int, *, limit: int, ttl_s: float) -> tuple[bool, int]:
        now = self.clock()
        current = self._total(key, now)
        if current + amount > limit:
            return False, current
        return True, self._increment(key, amount, ttl_s, now)

    async def read(self, key: str) -> int:
        return self._total(key, self.clock())

    def _total(self, key: str, now: float) -> int:
        value, expires = self._counts.get(key, (0, 0.0))
        return value if expires > now else 0

    def _increment(self, key: str, amount: int, ttl_s: float, now: float) -> int:
        value, expires = self._counts.get(key, (0, 0.0))
        if expires <= now:
            value = 0
            if len(self._counts) >= self.max_keys:
                self._forget_expired_counts(now)
        value += amount
        self._counts[key] = (value, now + ttl_s)
        return value

    def _forget_idle_logs(self, now: float) -> None:
        idle = [k for k, (log, window) in self._logs.items() if not log or log[-1] <= now - window]
        for key in idle or list(self._logs)[: self.max_keys // 2]:
            del self._logs[key]

    def _forget_cells(self, now: float) -> None:
        expired = [k for k, tat in self._cells.items() if tat <= now]
        for key in expired or list(self._cells)[: self.max_keys // 2]:
            del self._cells[key]

    def _forget_expired_counts(self, now: float) -> None:
        expired = [k for k, (_, expires) in self._counts.items() if expires <= now]
        for key in expired or list(self._counts)[: self.max_keys // 2]:
            del self._counts[key]

    async def health(self) -> Health:
        return HEALTHY

    async def close(self) -> None:
        pass


class MemoryCache:
    """An LRU of bytes values with per-entry expiry, bounded by total size."""

    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024, clock: Clock = time.monotonic):
        self.max_bytes = max_bytes
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires <= self.clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._remove(key)
        self._entries[key] = (value, self.clock() + ttl_s)
        self.size += len(value)
        while self.size > self.max_bytes:
            self._remove(next(iter(self._entries)))

    async def clear(self, prefix: str) -> int:
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def _remove(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.size -= len(value)

    async def health(self) -> Health:
        return HEALTHY

    async def close(self) -> None:
        pass


class MemoryJobs:
    """Jobs in a dict, for one instance; lost on restart (use Redis for durable jobs)."""

    def __init__(self, *, max_jobs: int = 10_000) -> None:
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, JobInfo] = OrderedDict()
        self._ids = itertools.count(1)

    async def add(
        self,
        queue: str,
        name: str,
        data: dict[str, Any],
        *,
        priority: int = 0,
        delay_ms: int = 0,
        attempts: int = 1,
    ) -> str:
        job_id = str(next(self._ids))
        state: JobState = "delayed" if delay_ms > 0 else "waiting"
        self._jobs[job_id] = JobInfo(job_id, queue, name, data, state)
        if len(self._jobs) > self.max_jobs:
            self._forget_finished()
        return job_id

    async def get(self, job_id: str) -> JobInfo | None:
        return self._jobs.get(job_id)

    async def counts(self) -> dict[str, dict[JobState, int]]:
        counts: dict[str, dict[JobState, int]] = {}
        for job in self._jobs.values():
            per_queue = counts.setdefault(job.queue, {})
            per_queue[job.state] = per_queue.get(job.state, 0) + 1
        return counts

    def _forget_finished(self) -> None:
        finished = [k for k, job in self._jobs.items() if job.state in ("completed", "failed")]
        for key in finished[: len(self._jobs) - self.max_jobs] or [next(iter(self._jobs))]:
            del self._jobs[key]

    async def health(self) -> Health:
        return HEALTHY

    async def close(self) -> None:
        pass
