"""Work after the reply: one bounded queue and a few workers, owned by the runtime.

Cache writes, usage records and webhooks must not delay the reply, and must not pile up without
bound when the thing they write to is slow. ``submit`` never blocks: past ``capacity`` waiting
jobs it refuses (the caller decides what a refusal means: a cache write is skipped, a usage
record goes to its journal) and counts the drop. At shutdown ``drain`` lets the queue finish
within a time limit, then cancels what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
T = TypeVar("T")


class Background:
    def __init__(self, *, capacity: int = 10_000, workers: int = 4) -> None:
        self.capacity = capacity
        self.workers = workers
        self.dropped = 0
        self.failed = 0
        self._queue: asyncio.Queue[tuple[str, Job]] = asyncio.Queue(capacity)
        self._tasks: list[asyncio.Task[None]] = []
        # Called at the start of drain(): work batched in memory (corrections) is queued too.
        self.before_drain: list[Callable[[], None]] = []

    @property
    def depth(self) -> int:
        """Jobs waiting to run."""
        return self._queue.qsize()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work()) for _ in range(self.workers)]

    def submit(self, name: str, job: Job) -> bool:
        """Queue ``job``; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait((name, job))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def _work(self) -> None:
        while True:
            name, job = await self._queue.get()
            try:
                await job()
            except Exception:  # one job's failure must not stop the worker
                self.failed += 1
                log.exception("background job %s failed", name)
            finally:
                self._queue.task_done()

    async def drain(self, timeout_s: float) -> bool:
        """Let queued work finish for at most ``timeout_s``, then stop; True if all finished."""
        for hand_over in self.before_drain:
            hand_over()
        finished = True
        if self._tasks:
            try:
                await asyncio.wait_for(self._queue.join(), timeout_s)
            except TimeoutError:
                finished = False
                log.warning("shutdown: %d background jobs did not finish in time", self.depth)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        return finished


class Coalescer(Generic[T]):
    """Corrections summed per key and applied together, after the replies, every ``every_s``.

    Settling a reservation (tokens of a rate limit, micro-dollars of a budget) does not have to
    happen before the reply, nor once per reply: a busy user's many corrections become one
    update, and with Redis all keys of a batch go in one pipelined write. ``item`` is what
    ``apply`` needs besides the key and the summed delta (the first one seen for the key).
    Until a batch is applied its reservations stay counted: a limit or budget is briefly
    stricter, never looser. ``pending`` and ``flush`` let a caller that cannot wait for the
    batch (a budget refusal, a report) apply it at once.
    """

    def __init__(
        self,
        background: Background,
        name: str,
        apply: Callable[[list[tuple[T, int]]], Awaitable[None]],
        every_s: float,
    ) -> None:
        self.background, self.name, self.apply, self.every_s = background, name, apply, every_s
        self._pending: dict[str, tuple[T, int]] = {}
        self._scheduled: asyncio.TimerHandle | None = None
        # Batches handed to the runner and not applied yet: a flush applies those still queued
        # itself (their job then finds them taken) and waits for those being applied.
        self._handed: list[_Batch[T]] = []
        self._flushes: set[asyncio.Task[None]] = set()  # (referenced until done)
        background.before_drain.append(self._submit)  # at shutdown, nothing is left pending

    def add(self, key: str, item: T, delta: int) -> None:
        if delta == 0:
            return
        first, pending = self._pending.get(key, (item, 0))
        self._pending[key] = (first, pending + delta)
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_later(self.every_s, self._submit)

    def pending(self, key: str) -> bool:
        """Whether a correction of ``key`` is not applied yet (waiting, queued or being applied)."""
        return key in self._pending or any(key in batch.items for batch in self._handed)

    async def flush(self) -> None:
        """Apply every correction not applied yet, and wait for those being applied (a report
        about to read the counters, a refused reservation about to be checked again). The
        apply runs on its own: a caller that goes away does not cut it short."""
        self._cancel_timer()
        items, self._pending = self._pending, {}
        waits: list[asyncio.Future[None]] = []
        for handed in self._handed:
            if handed.started:
                waits.append(handed.done)
                continue
            handed.taken = True  # applied here, with what is pending
            for key, (item, delta) in handed.items.items():
                first, pending = items.get(key, (item, 0))
                items[key] = (first, pending + delta)
        self._handed = [handed for handed in self._handed if handed.started]
        if items:
            batch = _Batch(items, asyncio.get_running_loop().create_future(), started=True)
            self._handed.append(batch)  # a concurrent flush waits for it too
            task = asyncio.get_running_loop().create_task(self._applied(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
            waits.append(batch.done)
        if waits:
            await asyncio.wait(waits)

    async def _applied(self, batch: _Batch[T]) -> None:
        """Apply a batch. A failure is logged and counted like a failed background job: its
        corrections are lost, which leaves the counters stricter, never looser (applying a
        batch again that may have been applied could loosen them)."""
        try:
            await self.apply(list(batch.items.values()))
        except Exception:
            self.background.failed += 1
            log.exception("applying %s corrections failed", self.name)
        finally:
            batch.done.set_result(None)
            self._handed.remove(batch)

    def _cancel_timer(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def _submit(self) -> None:
        self._cancel_timer()
        items, self._pending = self._pending, {}
        if not items:
            return
        batch = _Batch(items, asyncio.get_running_loop().create_future())

        async def job() -> None:
            if batch.taken:  # a flush applied it already
                return
            batch.started = True
            await self._applied(batch)

        if self.background.submit(self.name, job):
            self._handed.append(batch)
        else:  # the runner is full: try again later
            for key, (item, delta) in items.items():
                self.add(key, item, delta)


@dataclass(eq=False, slots=True)
class _Batch(Generic[T]):
    """Corrections on their way: handed to the background runner, or applied by a flush."""

    items: dict[str, tuple[T, int]]
    done: asyncio.Future[None]  # set once applied (or failed: logged)
    started: bool = False  # being applied
    taken: bool = False  # a flush applied it instead
