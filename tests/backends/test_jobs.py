"""Job queues, in process and in Redis through BullMQ: the same semantics from both.

Enqueue, look up and count; consumers that complete, retry with exponential backoff, fail at
once on a final failure, defer without counting an attempt, and stop gracefully.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from sidecar.backends import JobDeferred, JobFailed, JobInfo, JobQueue, JobQueueUnavailable
from sidecar.backends.jobs import RedisJobs
from sidecar.backends.memory import MemoryJobs
from tests.helpers import REDIS_URL

QUEUES = ("ai-high-priority", "ai-normal", "ai-batch")


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


class Recorder:
    """A processor that records each call (job id, attempts so far, time) and runs a script:
    per call, a result, or an exception to raise."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, int, float]] = []
        self.called = asyncio.Event()

    async def __call__(self, job: JobInfo) -> Any:
        self.calls.append((job.id, job.attempts, time.monotonic()))
        self.called.set()
        outcome = self.script.pop(0) if self.script else {"ok": job.data}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def finished(jobs: JobQueue, job_id: str, timeout_s: float = 15) -> JobInfo:
    """The job once completed or failed (polled, bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = await jobs.get(job_id)
        assert info is not None
        if info.state in ("completed", "failed"):
            return info
        assert time.monotonic() < deadline, info
        await asyncio.sleep(0.01)


async def test_a_job_is_enqueued_found_and_counted(jobs: JobQueue) -> None:
    """add() returns an id that get() finds with its data; counts() sees it waiting."""
    job_id = await jobs.add("ai-normal", "chat", {"path": "chat/completions", "body": {"a": 1}})
    info = await jobs.get(job_id)
    assert info is not None
    assert (info.queue, info.name, info.state) == ("ai-normal", "chat", "waiting")
    assert info.data == {"path": "chat/completions", "body": {"a": 1}}
    counts = await jobs.counts(QUEUES)
    assert counts["ai-normal"] == {
        "waiting": 1, "active": 0, "completed": 0, "failed": 0, "delayed": 0,
    }  # fmt: skip
    assert counts["ai-batch"]["waiting"] == 0


async def test_prioritized_and_delayed_jobs_count_where_callers_expect(jobs: JobQueue) -> None:
    """A prioritized job counts as waiting, a scheduled one as delayed."""
    await jobs.add("ai-high-priority", "chat", {}, priority=1)
    await jobs.add("ai-batch", "chat", {}, delay_ms=60_000)
    counts = await jobs.counts(QUEUES)
    assert counts["ai-high-priority"]["waiting"] == 1
    assert counts["ai-batch"]["delayed"] == 1


async def test_an_unknown_job_id_is_none(jobs: JobQueue) -> None:
    assert await jobs.get("ai-normal:does-not-exist") is None
    assert await jobs.get("garbage") is None


async def test_a_consumed_job_completes_with_the_processors_result(jobs: JobQueue) -> None:
    process = Recorder({"answer": 42})
    job_id = await jobs.add("ai-normal", "chat", {"n": 1}, attempts=2)
    consumer = await jobs.consume("ai-normal", process, concurrency=1)
    try:
        info = await finished(jobs, job_id)
    finally:
        await consumer.close(5)
    assert (info.state, info.attempts, info.result) == ("completed", 1, {"answer": 42})
    assert process.calls[0][:2] == (job_id, 0)


async def test_failures_are_retried_after_exponential_backoff_until_attempts_run_out(
    jobs: JobQueue,
) -> None:
    """3 attempts, backoff 100 ms: waits of >= 100 and >= 200 ms, then failed, error kept."""
    process = Recorder(
        JobFailed("NETWORK: one"), JobFailed("NETWORK: two"), JobFailed("NETWORK: 3")
    )
    job_id = await jobs.add("ai-high-priority", "chat", {}, attempts=3, backoff_ms=100)
    consumer = await jobs.consume("ai-high-priority", process, concurrency=1)
    try:
        info = await finished(jobs, job_id)
    finally:
        await consumer.close(5)
    assert (info.state, info.attempts, info.error) == ("failed", 3, "NETWORK: 3")
    assert [attempts for _, attempts, _ in process.calls] == [0, 1, 2]
    (_, _, t1), (_, _, t2), (_, _, t3) = process.calls
    assert t2 - t1 >= 0.1
    assert t3 - t2 >= 0.2


async def test_a_final_failure_fails_at_once_whatever_attempts_are_left(jobs: JobQueue) -> None:
    process = Recorder(JobFailed("CONTEXT_LENGTH: too long", final=True))
    job_id = await jobs.add("ai-high-priority", "chat", {}, attempts=3, backoff_ms=10)
    consumer = await jobs.consume("ai-high-priority", process, concurrency=1)
    try:
        info = await finished(jobs, job_id)
    finally:
        await consumer.close(5)
    assert (info.state, info.attempts, info.max_attempts) == ("failed", 1, 3)
    assert len(process.calls) == 1


async def test_a_deferred_job_runs_again_without_counting_an_attempt(jobs: JobQueue) -> None:
    """One attempt only, deferred twice: it still gets its attempt, after the delays."""
    process = Recorder(JobDeferred(0.1), JobDeferred(0.1), {"done": True})
    job_id = await jobs.add("ai-batch", "chat", {}, attempts=1)
    consumer = await jobs.consume("ai-batch", process, concurrency=1)
    try:
        info = await finished(jobs, job_id)
    finally:
        await consumer.close(5)
    assert (info.state, info.attempts, info.result) == ("completed", 1, {"done": True})
    assert [attempts for _, attempts, _ in process.calls] == [0, 0, 0]
    assert process.calls[2][2] - process.calls[0][2] >= 0.2


async def test_jobs_run_by_priority_within_a_queue(jobs: JobQueue) -> None:
    """BullMQ's order: jobs without a priority first, then priority 1, 2, ..."""
    low = await jobs.add("ai-normal", "chat", {}, priority=5)
    high = await jobs.add("ai-normal", "chat", {}, priority=1)
    plain = await jobs.add("ai-normal", "chat", {})
    process = Recorder()
    consumer = await jobs.consume("ai-normal", process, concurrency=1)
    try:
        await finished(jobs, low)
    finally:
        await consumer.close(5)
    assert [job_id for job_id, _, _ in process.calls] == [plain, high, low]


async def test_closing_lets_a_running_job_finish(jobs: JobQueue) -> None:
    """A graceful stop takes no new job but lets the running one finish (within its time)."""
    started = asyncio.Event()

    async def slow(job: JobInfo) -> Any:
        started.set()
        await asyncio.sleep(0.3)  # the job's work, under way when the close begins
        return "finished"

    job_id = await jobs.add("ai-normal", "chat", {})
    waiting_id = await jobs.add("ai-normal", "chat", {})
    consumer = await jobs.consume("ai-normal", slow, concurrency=1)
    await asyncio.wait_for(started.wait(), 10)
    await consumer.close(10)

    done, left = await jobs.get(job_id), await jobs.get(waiting_id)
    assert done is not None
    assert (done.state, done.result) == ("completed", "finished")
    assert left is not None
    assert left.state == "waiting"


async def test_a_job_overrunning_the_drain_time_is_abandoned_not_failed(jobs: JobQueue) -> None:
    """Past the drain time the job is left unfinished: never completed or failed by the stop
    (with Redis it stays active under its lock until another worker takes it over)."""
    started = asyncio.Event()

    async def stuck(job: JobInfo) -> Any:
        started.set()
        await asyncio.Event().wait()

    job_id = await jobs.add("ai-normal", "chat", {})
    consumer = await jobs.consume("ai-normal", stuck, concurrency=1)
    await asyncio.wait_for(started.wait(), 10)
    await consumer.close(0.1)

    info = await jobs.get(job_id)
    assert info is not None
    assert (info.state, info.attempts) in (("waiting", 0), ("active", 0))


async def test_the_in_process_queue_says_it_is_not_durable() -> None:
    health = await MemoryJobs().health()
    assert "not durable" in health.message


async def test_the_in_process_queue_keeps_completed_jobs_only_for_a_while() -> None:
    """Completed jobs are forgotten keep_completed_s after they finished; failed ones stay."""
    now = [1000.0]
    jobs = MemoryJobs(keep_completed_s=60, clock=lambda: now[0])
    done = await jobs.add("ai-normal", "chat", {})
    failed = await jobs.add("ai-normal", "chat", {})
    process = Recorder({"ok": 1}, JobFailed("INVALID_INPUT: no", final=True))
    consumer = await jobs.consume("ai-normal", process, concurrency=1)
    try:
        await finished(jobs, failed)
    finally:
        await consumer.close(5)
    now[0] += 59
    assert (await jobs.get(done)) is not None
    now[0] += 2
    assert (await jobs.get(done)) is None
    kept = await jobs.get(failed)
    assert kept is not None
    assert kept.state == "failed"


async def test_the_in_process_queue_refuses_jobs_past_its_bound() -> None:
    """Finished jobs make room for new ones; jobs still to run are never dropped."""
    jobs = MemoryJobs(max_jobs=2)
    first = await jobs.add("ai-normal", "chat", {})
    await jobs.add("ai-normal", "chat", {})
    with pytest.raises(JobQueueUnavailable):
        await jobs.add("ai-normal", "chat", {})
    consumer = await jobs.consume("ai-normal", Recorder(), concurrency=1)
    try:
        await finished(jobs, first)
    finally:
        await consumer.close(5)
    assert await jobs.add("ai-normal", "chat", {})  # room again: the oldest finished one went
