"""The background runner: bounded, never blocking, drained at shutdown within a limit."""

from __future__ import annotations

import asyncio

from sidecar.background import Background, Coalescer, Job


def appender(done: list[int], i: int) -> Job:
    async def run() -> None:
        await asyncio.sleep(0)
        done.append(i)

    return run


async def test_work_runs_after_submit_and_drain_waits_for_it() -> None:
    """Submitted jobs run on the workers; drain() returns once they are done."""
    background = Background(capacity=10, workers=2)
    background.start()
    done: list[int] = []
    assert all(background.submit("test", appender(done, i)) for i in range(5))
    assert await background.drain(5)
    assert sorted(done) == [0, 1, 2, 3, 4]


async def test_a_full_queue_refuses_and_counts_instead_of_blocking() -> None:
    """Past capacity, submit() returns False at once and the drop is counted."""
    background = Background(capacity=3, workers=1)  # not started: nothing leaves the queue
    done: list[int] = []
    accepted = [background.submit("test", appender(done, i)) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert (background.depth, background.dropped) == (3, 2)


async def test_a_failing_job_does_not_stop_the_worker() -> None:
    """A job that raises is logged and counted; the next job still runs."""
    background = Background(capacity=10, workers=1)
    background.start()
    done: list[int] = []

    async def broken() -> None:
        raise RuntimeError("bug")

    background.submit("broken", broken)
    background.submit("fine", appender(done, 1))
    assert await background.drain(5)
    assert (background.failed, done) == (1, [1])


async def test_drain_gives_up_after_its_time_limit() -> None:
    """Work that does not finish in time is cancelled; drain() says so."""
    background = Background(capacity=10, workers=1)
    background.start()
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    background.submit("stuck", stuck)
    assert not await background.drain(0.05)


async def test_corrections_pending_at_shutdown_are_applied_by_drain() -> None:
    """A Coalescer sums corrections per key and applies them after its interval; what is still
    pending when the runner drains (shutdown) is applied then, not lost."""
    background = Background(capacity=10, workers=1)
    background.start()
    applied: list[list[tuple[str, int]]] = []

    async def apply(batch: list[tuple[str, int]]) -> None:
        applied.append(batch)

    corrections = Coalescer(background, "test", apply, every_s=3600)
    corrections.add("alice", "alice", 5)
    corrections.add("alice", "alice", -2)
    corrections.add("bob", "bob", 7)
    assert applied == []
    assert await background.drain(timeout_s=5)
    assert applied == [[("alice", 3), ("bob", 7)]]


async def test_flush_applies_pending_and_queued_corrections_at_once_and_only_once() -> None:
    """flush() applies what waits for the timer and what is queued in the runner, summed, at
    once; the queued job then finds its batch taken and applies nothing again."""
    background = Background(capacity=10, workers=1)  # not started: a handed batch stays queued
    applied: list[list[tuple[str, int]]] = []

    async def apply(batch: list[tuple[str, int]]) -> None:
        applied.append(batch)

    corrections = Coalescer(background, "test", apply, every_s=3600)
    corrections.add("alice", "alice", 5)
    await background.drain(timeout_s=5)  # hands the batch to the queue (no worker takes it)
    assert background.depth == 1
    corrections.add("alice", "alice", -2)
    corrections.add("bob", "bob", 7)
    assert (corrections.pending("alice"), corrections.pending("bob")) == (True, True)
    assert not corrections.pending("carol")
    await corrections.flush()
    assert applied == [[("alice", 3), ("bob", 7)]]
    assert not corrections.pending("alice")
    background.start()
    assert await background.drain(timeout_s=5)
    assert applied == [[("alice", 3), ("bob", 7)]]


async def test_flush_waits_for_a_batch_being_applied() -> None:
    """A batch the runner is applying still counts as pending; flush() returns once it is
    applied, so a counter read after it sees the correction."""
    background = Background(capacity=10, workers=1)
    background.start()
    started, gate = asyncio.Event(), asyncio.Event()

    async def apply(batch: list[tuple[str, int]]) -> None:
        started.set()
        await gate.wait()

    corrections = Coalescer(background, "test", apply, every_s=0)
    corrections.add("alice", "alice", 1)
    await started.wait()
    assert corrections.pending("alice")
    flush = asyncio.create_task(corrections.flush())
    await asyncio.sleep(0)  # let it reach its wait (a yield to the loop, not a timer)
    assert not flush.done()
    gate.set()
    await flush
    assert not corrections.pending("alice")
    assert await background.drain(timeout_s=5)
