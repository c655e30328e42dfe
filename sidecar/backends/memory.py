"""In-process backends: the embedded default for a single sidecar (no Redis).

Same semantics as the Redis ones for one instance. Everything is bounded: keys that come from
clients (users, models) are forgotten when idle, and the cache evicts by size.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sidecar.backends import (
    JOB_STATES,
    Admission,
    Consumer,
    Health,
    JobDeferred,
    JobFailed,
    JobInfo,
    JobQueueUnavailable,
    JobState,
    Limit,
    Process,
    Tally,
    Window,
)

log = logging.getLogger(__name__)

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


@dataclass(slots=True)
class _Job:
    info: JobInfo
    priority: int
    backoff_ms: int
    due: float  # clock time from which it may run (delayed until then)
    finished: float = 0.0


class MemoryJobs:
    """Jobs in process with BullMQ's semantics (attempts, exponential backoff, delays,
    priorities, completed results kept ``keep_completed_s``, failed jobs kept), for one instance.

    Not durable: a restart loses every job, waiting or running (use Redis for durable jobs).
    At most ``max_jobs`` are held: the oldest finished ones make room, and when every job held
    is still to run, ``add`` refuses.
    """

    def __init__(
        self,
        *,
        keep_completed_s: float = 86400,
        max_jobs: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.keep_completed_s = keep_completed_s
        self.max_jobs = max_jobs
        self.clock = clock
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._ready: dict[str, list[tuple[int, int, str]]] = {}  # queue: heap (priority, seq, id)
        self._delayed: list[tuple[float, int, str]] = []  # heap of (due, seq, id), every queue
        self._completed: deque[tuple[float, str]] = deque()  # (finished, id), oldest first
        self._wakeups: dict[str, asyncio.Event] = {}
        self._seq = itertools.count()

    async def add(
        self,
        queue: str,
        name: str,
        data: dict[str, Any],
        *,
        priority: int = 0,
        delay_ms: int = 0,
        attempts: int = 1,
        backoff_ms: int = 0,
    ) -> str:
        self._expire(self.clock())
        if len(self._jobs) >= self.max_jobs:
            self._make_room()
        if len(self._jobs) >= self.max_jobs:
            raise JobQueueUnavailable(
                f"the in-process job queue holds {self.max_jobs} jobs still to run; "
                "try again later (or set redis_url for a larger, durable queue)"
            )
        job_id = f"{queue}:j{os.urandom(16).hex()}"
        info = JobInfo(job_id, queue, name, data, "waiting", max_attempts=attempts)
        job = _Job(info, priority, backoff_ms, self.clock() + delay_ms / 1000)
        self._jobs[job_id] = job
        self._schedule(job)
        return job_id

    async def get(self, job_id: str) -> JobInfo | None:
        now = self.clock()
        self._promote(now)
        self._expire(now)
        job = self._jobs.get(job_id)
        return None if job is None else replace(job.info, data=dict(job.info.data))

    async def counts(self, queues: Sequence[str]) -> dict[str, dict[JobState, int]]:
        now = self.clock()
        self._promote(now)
        self._expire(now)
        counts = {queue: dict.fromkeys(JOB_STATES, 0) for queue in queues}
        for job in self._jobs.values():
            if (per_queue := counts.get(job.info.queue)) is not None:
                per_queue[job.info.state] += 1
        return counts

    async def consume(self, queue: str, process: Process, *, concurrency: int) -> Consumer:
        return _MemoryConsumer(self, queue, process, concurrency)

    # --- moving jobs between states ------------------------------------------------------------

    def _schedule(self, job: _Job) -> None:
        """Into the delayed heap or the queue's ready heap, by its due time; wakes a worker."""
        if job.due > self.clock():
            job.info.state = "delayed"
            heapq.heappush(self._delayed, (job.due, next(self._seq), job.info.id))
        else:
            job.info.state = "waiting"
            ready = self._ready.setdefault(job.info.queue, [])
            heapq.heappush(ready, (job.priority, next(self._seq), job.info.id))
        self._wakeup(job.info.queue).set()

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job_id = heapq.heappop(self._delayed)
            job = self._jobs.get(job_id)
            if job is not None and job.info.state == "delayed":
                self._schedule(job)

    def _take(self, queue: str) -> _Job | None:
        """The next job of ``queue`` to run, now active; None when none is due."""
        self._promote(self.clock())
        ready = self._ready.get(queue)
        while ready:
            _, _, job_id = heapq.heappop(ready)
            job = self._jobs.get(job_id)
            if job is not None and job.info.state == "waiting":
                job.info.state = "active"
                return job
        return None

    def _until_due_s(self) -> float | None:
        """Seconds until the next delayed job is due (None: no delayed job)."""
        if not self._delayed:
            return None
        return max(0.0, self._delayed[0][0] - self.clock())

    def _wakeup(self, queue: str) -> asyncio.Event:
        event = self._wakeups.get(queue)
        if event is None:
            event = self._wakeups[queue] = asyncio.Event()
        return event

    def _completed_with(self, job: _Job, result: Any) -> None:
        job.info.attempts += 1
        job.info.state = "completed"
        job.info.result = result
        job.info.error = None
        job.finished = self.clock()
        self._completed.append((job.finished, job.info.id))

    def _failed_with(self, job: _Job, failure: JobFailed) -> None:
        """Retried after its backoff while attempts are left, unless the failure is final."""
        info = job.info
        info.attempts += 1
        info.error = str(failure)
        if failure.final or info.attempts >= info.max_attempts:
            info.state = "failed"
            job.finished = self.clock()
            return
        job.due = self.clock() + job.backoff_ms * 2 ** (info.attempts - 1) / 1000
        self._schedule(job)

    def _deferred(self, job: _Job, delay_s: float) -> None:
        job.due = self.clock() + delay_s
        self._schedule(job)

    def _expire(self, now: float) -> None:
        """Drop completed jobs kept long enough."""
        horizon = now - self.keep_completed_s
        while self._completed and self._completed[0][0] <= horizon:
            _, job_id = self._completed.popleft()
            job = self._jobs.get(job_id)
            if job is not None and job.info.state == "completed":
                del self._jobs[job_id]

    def _make_room(self) -> None:
        """Drop the oldest finished jobs (a tenth of the bound, so this scan is rare)."""
        finished = [k for k, job in self._jobs.items() if job.info.state in ("completed", "failed")]
        for job_id in finished[: max(1, self.max_jobs // 10)]:
            del self._jobs[job_id]

    async def health(self) -> Health:
        return Health(
            "healthy",
            "in-process: jobs are not durable (lost on restart); set redis_url for durable jobs",
        )

    async def close(self) -> None:
        pass


class _MemoryConsumer:
    """``concurrency`` tasks taking jobs of one queue as they become due."""

    def __init__(self, jobs: MemoryJobs, queue: str, process: Process, concurrency: int) -> None:
        self.jobs = jobs
        self.queue = queue
        self.process = process
        self._stopping = False
        self._tasks = [asyncio.create_task(self._work()) for _ in range(concurrency)]

    async def _work(self) -> None:
        wakeup = self.jobs._wakeup(self.queue)
        while not self._stopping:
            wakeup.clear()  # before looking, so an add that comes after is not missed
            job = self.jobs._take(self.queue)
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), self.jobs._until_due_s())
                continue
            await self._run(job)

    async def _run(self, job: _Job) -> None:
        try:
            result = await self.process(replace(job.info, data=dict(job.info.data)))
        except JobFailed as failure:
            self.jobs._failed_with(job, failure)
        except JobDeferred as deferral:
            self.jobs._deferred(job, deferral.delay_s)
        except asyncio.CancelledError:
            self.jobs._deferred(job, 0.0)  # abandoned at shutdown: it has not run
            raise
        except Exception as exc:
            log.exception("job %s failed unexpectedly", job.info.id)
            self.jobs._failed_with(job, JobFailed(f"{type(exc).__name__}: {exc}"))
        else:
            self.jobs._completed_with(job, result)

    async def close(self, timeout_s: float) -> None:
        self._stopping = True
        self.jobs._wakeup(self.queue).set()
        _, running = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in running:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
