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
