"""Durable jobs in Redis through the official ``bullmq`` package.

The queues are BullMQ's own keys, so a Node app using BullMQ can enqueue jobs here and read
their results (``tests/interop``). A job id names its queue (``ai-normal:j5f0c...``) because
BullMQ numbers jobs per queue; ids of jobs added here are random, so they cannot be guessed.

Durability is BullMQ's: a job is in Redis before ``add`` returns; a worker holds a lock on each
job it runs and renews it every ``lock_ms / 2``; a worker that dies (``kill -9``) stops renewing,
and any other worker's stalled-job check (every ``stalled_interval_ms``) puts the job back to
wait once the lock has expired. Completed jobs are removed ``keep_completed_s`` after they
finished (BullMQ does so as later jobs complete); failed jobs are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from bullmq import DelayedError, Job, Queue, UnrecoverableError, Worker
from redis.exceptions import RedisError, ResponseError

from sidecar.backends import (
    JOB_STATES,
    Consumer,
    Health,
    JobDeferred,
    JobFailed,
    JobInfo,
    JobQueueUnavailable,
    JobState,
    Process,
)
from sidecar.backends.redis import redacted

log = logging.getLogger(__name__)

T = TypeVar("T")

_PROBE = "ai-normal"
# How long a closing consumer waits for BullMQ to finish setting a worker up once Redis has
# answered (milliseconds, unless the machine is starved).
_SET_UP_S = 10.0  # the queue whose connection the health check pings

# BullMQ keeps prioritized jobs apart from plain waiting ones; callers see both as waiting.
_COUNTED = (*JOB_STATES, "prioritized", "waiting-children")


class RedisJobs:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bull",
        keep_completed_s: int = 86400,
        lock_ms: int = 30000,
        stalled_interval_ms: int = 30000,
        timeout_s: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.keep_completed_s = keep_completed_s
        self.lock_ms = lock_ms
        self.stalled_interval_ms = stalled_interval_ms
        # The API side (add, get, counts) answers HTTP requests: it must fail fast when Redis
        # is away, where BullMQ's own connections retry for minutes (right for workers).
        self.timeout_s = timeout_s
        self._queues: dict[str, Queue] = {}

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            client = aioredis.from_url(
                self.url,
                decode_responses=True,  # as BullMQ's own connections
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
            )
            queue = self._queues[name] = Queue(name, {"connection": client, "prefix": self.prefix})
        return queue

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            raise JobQueueUnavailable(
                f"Redis at {redacted(self.url)}: {type(exc).__name__}"
            ) from None

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
        opts: dict[str, Any] = {
            # BullMQ refuses custom ids that are integers or contain ':'.
            "jobId": "j" + os.urandom(16).hex(),
            "attempts": attempts,
            "removeOnComplete": {"age": self.keep_completed_s},
            "removeOnFail": False,
        }
        if backoff_ms > 0:
            opts["backoff"] = {"type": "exponential", "delay": backoff_ms}
        if priority:
            opts["priority"] = priority
        if delay_ms > 0:
            opts["delay"] = delay_ms
        job = await self._bounded(self._queue(queue).add(name, data, opts))
        return f"{queue}:{job.id}"

    async def get(self, job_id: str) -> JobInfo | None:
        queue_name, _, local_id = job_id.rpartition(":")
        if not queue_name or not local_id:
            return None
        queue = self._queue(queue_name)
        # The state first: a job read as finished then has its final attempts and result.
        raw_state = str(await self._bounded(queue.getJobState(local_id)))
        job = await self._bounded(Job.fromId(queue, local_id))
        if job is None:
            return None
        return _info(job_id, queue_name, job, _state(raw_state))

    async def counts(self, queues: Sequence[str]) -> dict[str, dict[JobState, int]]:
        result: dict[str, dict[JobState, int]] = {}
        for name in queues:
            raw = await self._bounded(self._queue(name).getJobCounts(*_COUNTED))
            counts: dict[JobState, int] = {state: int(raw.get(state, 0)) for state in JOB_STATES}
            counts["waiting"] += int(raw.get("prioritized", 0)) + int(
                raw.get("waiting-children", 0)
            )
            result[name] = counts
        return result

    async def consume(self, queue: str, process: Process, *, concurrency: int) -> Consumer:
        opts = {
            "connection": self.url,
            "prefix": self.prefix,
            "concurrency": concurrency,
            "lockDuration": self.lock_ms,
            "stalledInterval": self.stalled_interval_ms,
            # Jobs a Node producer added without these options get ours.
            "removeOnComplete": {"age": self.keep_completed_s},
            "removeOnFail": False,
            "name": "llm-sidecar",
            "autorun": False,
        }
        # Starts in the background: an unreachable Redis must not hold up start-up.
        return _RedisConsumer(queue, process, opts, timeout_s=self.timeout_s)

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            await self._bounded(self._queue(_PROBE).backend.waitUntilReady())
        except JobQueueUnavailable as exc:
            return Health("unhealthy", str(exc), None, "redis")
        latency_ms = (time.perf_counter() - started) * 1000
        return Health("healthy", f"bullmq, prefix {self.prefix!r} (durable)", latency_ms, "redis")

    async def close(self) -> None:
        for queue in self._queues.values():
            await queue.close()


class _RedisConsumer:
    """A BullMQ worker whose jobs go to ``process``, kept running: one that stops on an error
    (Redis away when it started) is replaced after a pause. It knows which jobs are running,
    from the processor's start until BullMQ has stored the outcome, so closing can wait for
    them, bounded, where BullMQ would wait without end."""

    def __init__(
        self, queue: str, process: Process, opts: dict[str, Any], *, timeout_s: float
    ) -> None:
        self.queue = queue
        self.process = process
        self.opts = opts
        self.timeout_s = timeout_s
        self._running: set[str] = set()  # job ids
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._worker: Worker | None = None  # None between two workers
        self._probing = False
        self._task = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        """Start a worker once Redis answers; when it stops, another after a pause (doubling,
        up to 30 s)."""
        pause_s = 1.0
        while True:
            worker = self._worker = Worker(self.queue, self._run, self.opts)
            # Emitted once the outcome is in Redis ("error": storing it failed).
            worker.on("completed", self._stored)
            worker.on("failed", self._stored)
            worker.on("error", self._stored)
            try:
                # Redis must answer first: BullMQ's own connections would retry for minutes.
                self._probing = True
                await self._learn_capabilities(worker)
                self._probing = False
                await worker.run()
            except Exception as exc:
                if not self._closing:
                    log.warning(
                        "job worker of %s: %s: %s", self.queue, type(exc).__name__, _why(exc)
                    )
            if self._closing:
                return
            self._worker, self._probing = None, False
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout_s):
                    await worker.close(force=True)
            log.warning("job worker of %s: starting another in %.0f s", self.queue, pause_s)
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, 30.0)

    async def _learn_capabilities(self, worker: Worker) -> None:
        """Ask the server's version (bounded): BullMQ learns from it what the server can do,
        and until then blocks for whole seconds at a time (a retry due in 50 ms would wait a
        second)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                await worker.blockingRedisConnection.getRedisVersion()
        except ResponseError as exc:  # INFO refused (some hosted Redis): run all the same
            log.info("job worker of %s: Redis version unknown (%s)", self.queue, exc)

    async def started(self, timeout_s: float) -> bool:
        """Whether the worker is running, waiting up to ``timeout_s`` while BullMQ sets it up
        (closing it then would cut a command off and leak its connection). False at once
        before that (asking Redis for its version can be cancelled) and between two workers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._task.done():
            worker = self._worker
            if worker is None or self._probing:
                return False
            if worker.running:
                return True
            await asyncio.sleep(0.005)
        return False

    async def _run(self, job: Job, token: str) -> Any:
        self._running.add(str(job.id))
        self._idle.clear()
        try:
            return await self.process(_info(f"{self.queue}:{job.id}", self.queue, job, "active"))
        except JobFailed as failure:
            if failure.final:
                raise UnrecoverableError(str(failure)) from None
            raise
        except JobDeferred as deferral:
            # Back to delayed without counting an attempt; DelayedError tells the worker so.
            try:
                await job.moveToDelayed(round((time.time() + deferral.delay_s) * 1000), token)
            finally:
                self._stored(job)
            raise DelayedError from None
        except asyncio.CancelledError:
            self._stored(job)  # abandoned: its lock will expire
            raise

    def _stored(self, *args: Any) -> None:
        """A job's outcome is stored (BullMQ's events pass the job first, or second for an
        error); when none runs any more, closing may go on."""
        job = next((arg for arg in args[:2] if isinstance(arg, Job)), None)
        if job is not None:
            self._running.discard(str(job.id))
        if not self._running:
            self._idle.set()

    async def close(self, timeout_s: float) -> None:
        self._closing = True
        worker = self._worker
        if worker is not None and await self.started(_SET_UP_S):
            await worker.pause(do_not_wait_active=True)  # takes no new job from here on
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._idle.wait()
        # Stop what runs: a running worker is closed (its run ends); a probe or the pause
        # between two workers is cancelled. Looked at again until the supervisor has ended,
        # as a cancellation can be lost inside a Redis client's command.
        deadline = time.monotonic() + _SET_UP_S
        while not self._task.done() and time.monotonic() < deadline:
            worker = self._worker
            if worker is not None and worker.running:
                if not worker.closing:
                    await self._close_worker(worker)
            elif worker is None or self._probing:
                self._task.cancel()
            await asyncio.wait({self._task}, timeout=0.1)
        if not self._task.done():
            log.warning("job worker of %s did not stop in %.0f s", self.queue, _SET_UP_S)
        elif not self._task.cancelled() and (error := self._task.exception()) is not None:
            log.debug("job worker of %s ended with %r", self.queue, error)
        if (worker := self._worker) is not None and not worker.closed:
            await self._close_worker(worker)  # its connections, when it never ran

    async def _close_worker(self, worker: Worker) -> None:
        """Forced: BullMQ's graceful close would also wait out its own blocking fetches
        (seconds); no job of ours runs now, unless it overran the drain time: that one is
        abandoned with its lock, for another worker to take over."""
        with contextlib.suppress(Exception):
            await worker.close(force=True)


def _info(job_id: str, queue: str, job: Job, state: JobState) -> JobInfo:
    data = job.data
    return JobInfo(
        id=job_id,
        queue=queue,
        name=str(job.name),
        # A Node producer may put anything in a job; the processor refuses what is not an object.
        data=dict(data) if isinstance(data, dict) else {"_data": data},
        state=state,
        attempts=int(job.attemptsMade or 0),
        max_attempts=max(1, int(job.opts.get("attempts") or 1)),
        result=job.returnvalue,
        error=job.failedReason or None,
    )


def _state(raw: str) -> JobState:
    if raw in ("prioritized", "waiting-children", "wait", "waiting"):
        return "waiting"
    for state in JOB_STATES:
        if raw == state:
            return state
    return "waiting"


def _why(exc: Exception) -> str:
    """An exception's message; a bare timeout says what timed out instead of nothing."""
    if str(exc):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "Redis did not answer in time; is it up and reachable at redis_url?"
    return "(no message)"
