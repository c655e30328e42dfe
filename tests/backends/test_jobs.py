"""Job queues: enqueue, look up, count — in process and in Redis through BullMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sidecar.backends import JobQueue
from sidecar.backends.jobs import RedisJobs
from sidecar.backends.memory import MemoryJobs
from tests.helpers import REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def jobs(
    request: pytest.FixtureRequest, key_prefix: str, redis_client: aioredis.Redis
) -> AsyncIterator[JobQueue]:
    queue: JobQueue = (
        MemoryJobs()
        if request.param == "memory"
        else RedisJobs(REDIS_URL, prefix=key_prefix.rstrip(":"))
    )
    yield queue
    await queue.close()


async def test_a_job_is_enqueued_found_and_counted(jobs: JobQueue) -> None:
    """add() returns an id that get() finds with its data; counts() sees it waiting."""
    job_id = await jobs.add("ai-normal", "chat", {"path": "chat/completions", "body": {"a": 1}})
    info = await jobs.get(job_id)
    assert info is not None
    assert (info.queue, info.name, info.state) == ("ai-normal", "chat", "waiting")
    assert info.data == {"path": "chat/completions", "body": {"a": 1}}
    assert (await jobs.counts())["ai-normal"]["waiting"] == 1


async def test_prioritized_and_delayed_jobs_count_where_callers_expect(jobs: JobQueue) -> None:
    """A prioritized job counts as waiting, a scheduled one as delayed."""
    await jobs.add("ai-high-priority", "chat", {}, priority=1)
    await jobs.add("ai-batch", "chat", {}, delay_ms=60_000)
    counts = await jobs.counts()
    assert counts["ai-high-priority"]["waiting"] == 1
    assert counts["ai-batch"]["delayed"] == 1


async def test_an_unknown_job_id_is_none(jobs: JobQueue) -> None:
    assert await jobs.get("ai-normal:does-not-exist") is None
    assert await jobs.get("garbage") is None
