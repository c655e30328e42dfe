"""Live priority admission: how many model calls each provider gets at once, and who goes next.

The rules, applied by :class:`Gate` (one per provider)::

    slots      providers.NAME.max_concurrency, else admission.max_concurrency: upstream model
               calls in flight to the provider at once
    adaptive   AIMD: a 429 from the provider halves the limit (never below 1), once per round
               of calls (a 429 to a call sent before the last cut is the same congestion);
               each success adds 1/limit, about one slot per limit's worth of successes, back
               up to the configured slots
    order      a free slot goes to the highest priority waiting (high, normal, batch), except
               that a priority passed over AGING_GRANTS times in a row while it waited gets the
               next one: under saturation batch still gets at least one slot in
               AGING_GRANTS + 1. Within a priority users take turns (round robin over one FIFO
               queue per user), so one user's burst cannot starve the others
    shed       a request still waiting after its wait limit gets no slot (``None``)
    fast path  a slot free and nobody waiting: taken at once, no task switch, no lock

Nothing polls or sleeps: each waiter awaits its own future, with its own timer for the wait
limit; a released slot is handed straight to the next waiter (so a newcomer cannot take it
first). Every operation is O(1) amortized: waiters that leave early (cancelled, shed) stay in
their queue and are skipped when reached, and a priority left with none but those is cleared.

Cancellation: a waiter cancelled while queued leaves the queue; one cancelled just after a slot
was handed to it gives the slot back. A permit is released at most once.

Slots are per process: instances sharing Redis each have their own (a provider's 429s still
teach each of them to slow down).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from typing import Final

from sidecar.config import PRIORITIES, Admission, Priority, Settings

AGING_GRANTS: Final = 8  # a waiting priority passed over this many times gets the next slot
DECREASE: Final = 0.5  # a 429 multiplies the limit by this
HOLD_WEIGHT: Final = 0.1  # moving average of how long a call holds its slot (Retry-After hint)
MAX_RETRY_AFTER_S: Final = 60.0
_LANE: Final = {priority: index for index, priority in enumerate(PRIORITIES)}


class Permit:
    """One slot on a provider, held from admission until :meth:`release`."""

    __slots__ = ("_gate", "generation", "granted_at", "released")

    def __init__(self, gate: Gate, generation: int) -> None:
        self._gate = gate
        self.generation = generation  # the limit's cut count when granted (see Gate.throttled)
        self.granted_at = time.monotonic()
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._gate._leave(self)


class _Waiter:
    __slots__ = ("counted", "future", "lane", "user")

    def __init__(self, future: asyncio.Future[Permit | None], user: str, lane: _Lane) -> None:
        self.future = future
        self.user = user
        self.lane = lane
        # Counted as waiting. A waiter stops being counted once granted, shed or cancelled; one
        # whose task was cancelled is still counted until that task runs again (or the queue
        # reaches it first), so the counts never skip it nor count it twice.
        self.counted = True


class _Lane:
    """The waiters of one priority: a FIFO queue per user, and the users' turn order."""

    __slots__ = ("live", "passed_over", "queues", "turns")

    def __init__(self) -> None:
        self.queues: dict[str, deque[_Waiter]] = {}
        self.turns: deque[str] = deque()  # users with a queue, the next one first
        self.live = 0  # waiters counted (the queues may also hold ones that left)
        self.passed_over = 0  # slots given to other priorities in a row while this one waited

    def push(self, waiter: _Waiter) -> None:
        queue = self.queues.get(waiter.user)
        if queue is None:
            queue = self.queues[waiter.user] = deque()
            self.turns.append(waiter.user)
        queue.append(waiter)
        self.live += 1

    def pop(self) -> _Waiter:
        """The next user's oldest counted waiter; that user goes to the back of the turns.
        Only called with ``live > 0``."""
        while True:
            user = self.turns[0]
            queue = self.queues[user]
            waiter = queue.popleft()
            if not queue:
                self.turns.popleft()
                del self.queues[user]
            elif waiter.counted:
                self.turns.rotate(-1)
            if waiter.counted:
                return waiter

    def left(self, waiter: _Waiter) -> None:
        """A waiter stops being counted; with none left, drop those that left early."""
        waiter.counted = False
        self.live -= 1
        if not self.live:
            self.queues.clear()
            self.turns.clear()


class Gate:
    """The slots of one provider and the queue in front of them."""

    def __init__(self, provider: str, slots: int) -> None:
        self.provider = provider
        self.slots = slots  # as configured: the limit's ceiling
        self.limit = float(slots)  # adaptive
        self.ceiling = slots  # int(limit): calls allowed in flight now
        self.in_flight = 0
        self.waiting = 0
        self.generation = 0  # how many times a 429 has cut the limit
        self.shed = 0  # waiters that got no slot in time, since start
        self.hold_s = 1.0  # moving average of how long a call holds its slot
        self.lanes = tuple(_Lane() for _ in PRIORITIES)
        self._change: asyncio.Future[None] | None = None

    # --- taking a slot --------------------------------------------------------------------------
    def enter(self) -> Permit | None:
        """A slot now if one is free and nobody is waiting for it, else None."""
        if self.in_flight < self.ceiling and not self.waiting:
            self.in_flight += 1
            return Permit(self, self.generation)
        return None

    def enter_anyway(self) -> Permit:
        """A slot even over the limit (a half-open circuit's single probe)."""
        self.in_flight += 1
        return Permit(self, self.generation)

    async def wait(self, priority: Priority, user: str, timeout_s: float) -> Permit | None:
        """Queue for a slot; None when none came within ``timeout_s`` (shed)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), user, self.lanes[_LANE[priority]])
        waiter.lane.push(waiter)
        self.waiting += 1
        timer = loop.call_later(max(0.0, timeout_s), self._expire, waiter)
        self._admit()
        self._changed()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._cancelled(waiter)
            raise
        finally:
            timer.cancel()

    def _cancelled(self, waiter: _Waiter) -> None:
        future = waiter.future
        if not future.done():
            future.cancel()
        if future.cancelled():  # still queued: leave the queue
            self._gone(waiter)
        elif (permit := future.result()) is not None:  # a slot came just before: give it back
            permit.release()

    def _expire(self, waiter: _Waiter) -> None:
        if not waiter.future.done():
            self.shed += 1
            self._gone(waiter)
            waiter.future.set_result(None)

    def _gone(self, waiter: _Waiter) -> None:
        if waiter.counted:
            waiter.lane.left(waiter)
            self.waiting -= 1
            self._changed()

    # --- giving slots back ----------------------------------------------------------------------
    def _leave(self, permit: Permit) -> None:
        self.in_flight -= 1
        self.hold_s += HOLD_WEIGHT * (time.monotonic() - permit.granted_at - self.hold_s)
        if self.waiting:
            self._admit()
        if self._change is not None:
            self._changed()

    def _admit(self) -> None:
        """Hand free slots to waiters, in order."""
        while self.waiting and self.in_flight < self.ceiling:
            waiter = self._next_lane().pop()
            self._gone(waiter)
            if waiter.future.done():  # its task was cancelled and has not run since
                continue
            self.in_flight += 1
            waiter.future.set_result(Permit(self, self.generation))

    def _next_lane(self) -> _Lane:
        """The highest priority waiting, unless one was passed over AGING_GRANTS times."""
        waiting = [lane for lane in self.lanes if lane.live]
        starved = max(waiting, key=lambda lane: lane.passed_over)  # ties: the higher priority
        chosen = starved if starved.passed_over >= AGING_GRANTS else waiting[0]
        for lane in waiting:
            lane.passed_over = 0 if lane is chosen else lane.passed_over + 1
        return chosen

    # --- adapting to the provider (AIMD) --------------------------------------------------------
    def succeeded(self) -> None:
        """The provider took a call: grow the limit back toward the configured slots."""
        if self.limit < self.slots:
            self.limit = min(float(self.slots), self.limit + 1.0 / self.limit)
            ceiling = int(self.limit)
            if ceiling != self.ceiling:
                self.ceiling = ceiling
                self._admit()

    def throttled(self, permit: Permit) -> None:
        """The provider answered 429: cut the limit, once per round of calls."""
        if permit.generation != self.generation:
            return  # sent before the last cut: the same congestion, already answered
        self.generation += 1
        self.limit = max(1.0, self.limit * DECREASE)
        self.ceiling = int(self.limit)

    # --- looking at it --------------------------------------------------------------------------
    def depth(self, priority: Priority) -> int:
        return self.lanes[_LANE[priority]].live

    def retry_after_s(self) -> float:
        """When a shed request might find a slot: the queue ahead times the hold time."""
        estimate = self.hold_s * (self.waiting + 1) / max(1, self.ceiling)
        return max(1.0, min(MAX_RETRY_AFTER_S, estimate))

    def changed(self) -> asyncio.Future[None]:
        """Resolves at the next change of the queue or the slots in use (tests, watchers)."""
        if self._change is None or self._change.done():
            self._change = asyncio.get_running_loop().create_future()
        return self._change

    def _changed(self) -> None:
        change = self._change
        if change is not None:
            self._change = None
            if not change.done():
                change.set_result(None)


class Gates:
    """Every provider's gate, and the wait limit of each priority."""

    def __init__(self, settings: Settings) -> None:
        admission = settings.admission
        self.gates = {
            name: Gate(name, provider.max_concurrency or admission.max_concurrency)
            for name, provider in settings.providers.items()
        }
        defaults = Admission().max_wait_ms
        self.max_wait_s: dict[Priority, float] = {
            priority: max(0, admission.max_wait_ms.get(priority, defaults[priority])) / 1000
            for priority in PRIORITIES
        }

    def __getitem__(self, provider: str) -> Gate:
        return self.gates[provider]

    def __iter__(self) -> Iterator[Gate]:
        return iter(self.gates.values())

    @property
    def in_flight(self) -> int:
        return sum(gate.in_flight for gate in self.gates.values())

    @property
    def waiting(self) -> int:
        return sum(gate.waiting for gate in self.gates.values())
