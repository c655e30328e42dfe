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
    stricter, never looser.
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
        background.before_drain.append(self._submit)  # at shutdown, nothing is left pending

    def add(self, key: str, item: T, delta: int) -> None:
        if delta == 0:
            return
        first, pending = self._pending.get(key, (item, 0))
        self._pending[key] = (first, pending + delta)
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_later(self.every_s, self._submit)

    async def flush(self) -> None:
        """Apply what is pending now (a report about to read the counters)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        batch, self._pending = self._pending, {}
        if batch:
            await self.apply(list(batch.values()))

    def _submit(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        batch, self._pending = self._pending, {}
        if not batch:
            return

        async def job() -> None:
            await self.apply(list(batch.values()))

        if not self.background.submit(self.name, job):  # the runner is full: try again later
            for key, (item, delta) in batch.items():
                self.add(key, item, delta)
