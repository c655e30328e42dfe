"""The admission controller on its own: slots, order, aging, fairness, shedding, AIMD, and
cancellation at every point of a wait. Tasks are sequenced with futures; nothing sleeps."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.admission import AGING_GRANTS, Gate, Gates, Permit
from sidecar.config import Priority, settings_from_dict

LONG_S = 60.0  # a wait limit no test reaches


def take(gate: Gate) -> Permit:
    """A slot on the fast path, which the test expects to be free."""
    permit = gate.enter()
    assert permit is not None, "no free slot"
    return permit


async def granted(task: asyncio.Task[Permit | None]) -> Permit:
    permit = await task
    assert permit is not None, "shed instead of admitted"
    return permit


async def queue(gate: Gate, priority: Priority, user: str) -> asyncio.Task[Permit | None]:
    """Start a waiter and let it take its place in the queue."""
    before = gate.waiting
    task = asyncio.create_task(gate.wait(priority, user, LONG_S))
    await asyncio.sleep(0)  # one loop turn: the task runs up to its await
    assert gate.waiting == before + 1
    return task


async def grants(
    gate: Gate, held: Permit, tasks: dict[str, asyncio.Task[Permit | None]]
) -> list[str]:
    """Release slots one at a time; the names of the waiters in the order they got one."""
    order: list[str] = []
    permit = held
    while len(order) < len(tasks):
        permit.release()
        await asyncio.sleep(0)  # the granted waiter resumes
        done = [name for name, task in tasks.items() if task.done() and name not in order]
        assert len(done) == 1, done
        order += done
        permit = await granted(tasks[done[0]])
    permit.release()
    return order


def test_slots_come_from_the_provider_else_the_admission_default() -> None:
    """providers.NAME.max_concurrency wins over admission.max_concurrency."""
    settings = settings_from_dict(
        {
            "providers": {"a": {"max_concurrency": 3}, "b": {}},
            "admission": {"max_concurrency": 7, "max_wait_ms": {"high": 250}},
        }
    )
    gates = Gates(settings)
    assert (gates["a"].slots, gates["b"].slots) == (3, 7)
    assert gates.max_wait_s == {"high": 0.25, "normal": 10.0, "batch": 300.0}


async def test_fast_path_takes_free_slots_then_refuses() -> None:
    """Up to the slots a permit comes at once; a released slot is free again."""
    gate = Gate("p", 2)
    first, second = take(gate), take(gate)
    assert gate.enter() is None
    first.release()
    first.release()  # a permit releases once
    assert gate.in_flight == 1
    again = take(gate)
    again.release()
    second.release()
    assert gate.in_flight == 0


async def test_a_newcomer_does_not_overtake_a_waiter() -> None:
    """A released slot goes to the waiter, not to a request arriving at that moment."""
    gate = Gate("p", 1)
    held = take(gate)
    waiter = await queue(gate, "batch", "u")
    held.release()
    assert gate.enter() is None  # the slot is already the waiter's
    permit = await granted(waiter)
    permit.release()
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_higher_priorities_are_admitted_first() -> None:
    """High before normal before batch, whatever order they queued in."""
    gate = Gate("p", 1)
    held = take(gate)
    tasks = {
        "b1": await queue(gate, "batch", "u1"),
        "n1": await queue(gate, "normal", "u2"),
        "h1": await queue(gate, "high", "u3"),
        "n2": await queue(gate, "normal", "u4"),
        "h2": await queue(gate, "high", "u5"),
    }
    assert [gate.depth(p) for p in ("high", "normal", "batch")] == [2, 2, 1]
    assert await grants(gate, held, tasks) == ["h1", "h2", "n1", "n2", "b1"]


async def test_batch_progresses_under_a_stream_of_high_priority() -> None:
    """Aging: a priority passed over AGING_GRANTS times gets the next slot."""
    gate = Gate("p", 1)
    held = take(gate)
    tasks = {"batch": await queue(gate, "batch", "b")}
    for i in range(AGING_GRANTS + 4):
        tasks[f"h{i}"] = await queue(gate, "high", f"user{i}")
    order = await grants(gate, held, tasks)
    assert order.index("batch") == AGING_GRANTS


async def test_users_take_turns_within_a_priority() -> None:
    """One user's burst queued first does not keep another user waiting behind all of it."""
    gate = Gate("p", 1)
    held = take(gate)
    tasks = {f"a{i}": await queue(gate, "normal", "alice") for i in range(4)}
    tasks["b0"] = await queue(gate, "normal", "bob")
    tasks["c0"] = await queue(gate, "normal", "carol")
    assert await grants(gate, held, tasks) == ["a0", "b0", "c0", "a1", "a2", "a3"]


async def test_a_waiter_past_its_limit_is_shed() -> None:
    """No slot within the wait limit: None, and the queue forgets the waiter."""
    gate = Gate("p", 1)
    held = take(gate)
    assert await gate.wait("normal", "u", 0.0) is None
    assert (gate.waiting, gate.shed, gate.depth("normal")) == (0, 1, 0)
    held.release()
    assert gate.in_flight == 0


async def test_a_waiter_cancelled_in_the_queue_leaves_it() -> None:
    """Cancelled while queued: not counted, never granted; the next waiter gets the slot."""
    gate = Gate("p", 1)
    held = take(gate)
    gone = await queue(gate, "high", "u")
    stays = await queue(gate, "batch", "v")
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert (gate.waiting, gate.depth("high")) == (1, 0)
    held.release()
    permit = await granted(stays)
    permit.release()
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_a_waiter_cancelled_just_after_its_grant_gives_the_slot_back() -> None:
    """The slot was handed over but the task was cancelled before it resumed: no leak."""
    gate = Gate("p", 1)
    held = take(gate)
    unlucky = await queue(gate, "normal", "u")
    next_in_line = await queue(gate, "normal", "v")
    held.release()  # hands the slot to the first waiter ...
    assert not unlucky.done()
    assert gate.in_flight == 1
    unlucky.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    permit = await granted(next_in_line)  # the slot went on to the next waiter
    permit.release()
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_waiters_that_left_are_dropped_once_none_is_left() -> None:
    """Cancelled waiters do not pile up in memory when nobody else is queued."""
    gate = Gate("p", 1)
    held = take(gate)
    tasks = [await queue(gate, "normal", f"u{i % 3}") for i in range(30)]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lane = gate.lanes[1]
    assert (lane.live, len(lane.queues), len(lane.turns)) == (0, 0, 0)
    held.release()
    assert gate.in_flight == 0


async def test_429s_halve_the_limit_once_per_round_and_successes_restore_it() -> None:
    """AIMD: a 429 halves the limit (floor 1), calls sent before that cut do not cut again;
    each success adds 1/limit until the configured slots."""
    gate = Gate("p", 8)
    sent = [take(gate) for _ in range(4)]
    for permit in sent:  # four 429s of one round: one cut
        gate.throttled(permit)
        permit.release()
    assert (gate.limit, gate.ceiling) == (4.0, 4)
    for _ in range(3):  # each later round cuts again, down to one
        permit = take(gate)
        gate.throttled(permit)
        permit.release()
    assert (gate.limit, gate.ceiling) == (1.0, 1)
    successes = 0
    while gate.ceiling < gate.slots:
        gate.succeeded()
        successes += 1
        assert successes < 100
    assert successes > gate.slots  # additive: well more than one step per slot
    assert gate.limit == gate.slots


async def test_a_growing_limit_admits_waiters() -> None:
    """When successes raise the limit, waiters get the new slots at once."""
    gate = Gate("p", 2)
    first = take(gate)
    gate.throttled(first)  # limit 1
    waiter = await queue(gate, "normal", "u")
    gate.succeeded()  # limit 2: a slot opens for the waiter
    permit = await granted(waiter)
    assert gate.in_flight == 2
    first.release()
    permit.release()


async def test_changed_resolves_on_queue_and_slot_changes() -> None:
    """Watchers (tests, gauges) can wait for the next change instead of polling."""
    gate = Gate("p", 1)
    change = gate.changed()
    held = take(gate)  # the fast path does not announce itself
    assert not change.done()
    waiter = await queue(gate, "normal", "u")
    assert change.done()
    change = gate.changed()
    held.release()
    assert change.done()
    permit = await granted(waiter)
    permit.release()


async def test_a_slot_freed_while_a_cancellation_is_pending_skips_that_waiter() -> None:
    """A waiter's task is cancelled, and before it runs again a slot frees: the slot does not
    go to the cancelled waiter, nor is it lost."""
    gate = Gate("p", 1)
    held = take(gate)
    gone = await queue(gate, "normal", "u")
    stays = await queue(gate, "batch", "v")
    gone.cancel()  # its future is cancelled now; its task has not run yet
    held.release()
    permit = await granted(stays)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert (gate.waiting, gate.depth("normal")) == (0, 0)
    held = permit  # the same with no other waiter
    gone = await queue(gate, "high", "y")
    gone.cancel()
    held.release()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert (gate.in_flight, gate.waiting) == (0, 0)
