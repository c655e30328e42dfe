"""Durable jobs in Redis through the official ``bullmq`` package.

The queues are BullMQ's own, so a Node app using BullMQ can enqueue jobs here and read their
results. A job id names its queue (``ai-normal:17``) because BullMQ numbers jobs per queue.
"""

from __future__ import annotations

import time
from typing import Any

from bullmq import Job, Queue
from redis.exceptions import RedisError

from sidecar.backends import JOB_STATES, Health, JobInfo, JobState
from sidecar.backends.redis import redacted

# BullMQ keeps prioritized jobs apart from plain waiting ones; callers see both as waiting.
_COUNTED = (*JOB_STATES, "prioritized", "waiting-children")


class RedisJobs:
    def __init__(self, url: str, *, prefix: str = "bull", queues: tuple[str, ...] = ()) -> None:
        self.url = url
        self.prefix = prefix
        self._queues: dict[str, Queue] = {}
        for name in queues:
            self._queue(name)

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = Queue(
                name, {"connection": self.url, "prefix": self.prefix}
            )
        return queue

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
        opts: dict[str, Any] = {"attempts": attempts}
        if priority:
            opts["priority"] = priority
        if delay_ms > 0:
            opts["delay"] = delay_ms
        job = await self._queue(queue).add(name, data, opts)
        return f"{queue}:{job.id}"

    async def get(self, job_id: str) -> JobInfo | None:
        queue_name, _, local_id = job_id.rpartition(":")
        if not queue_name or not local_id:
            return None
        queue = self._queue(queue_name)
        job = await Job.fromId(queue, local_id)
        if job is None:
            return None
        state = _state(str(await job.getState()))
        return JobInfo(
            id=job_id,
            queue=queue_name,
            name=str(job.name),
            data=dict(job.data or {}),
            state=state,
            attempts=int(job.attemptsMade or 0),
            result=job.returnvalue,
            error=job.failedReason or None,
        )

    async def counts(self) -> dict[str, dict[JobState, int]]:
        result: dict[str, dict[JobState, int]] = {}
        for name, queue in self._queues.items():
            raw = await queue.getJobCounts(*_COUNTED)
            counts: dict[JobState, int] = {state: int(raw.get(state, 0)) for state in JOB_STATES}
            counts["waiting"] += int(raw.get("prioritized", 0)) + int(
                raw.get("waiting-children", 0)
            )
            result[name] = counts
        return result

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            await self.counts()
        except (RedisError, OSError) as exc:
            return Health("unhealthy", f"{redacted(self.url)}: {type(exc).__name__}", None, "redis")
        return Health("healthy", "bullmq", (time.perf_counter() - started) * 1000, "redis")

    async def close(self) -> None:
        for queue in self._queues.values():
            await queue.close()


def _state(raw: str) -> JobState:
    if raw in ("prioritized", "waiting-children", "wait", "waiting"):
        return "waiting"
    for state in JOB_STATES:
        if raw == state:
            return state
    return "waiting"
