"""Circuit breakers and retry budgets, per provider x model, in memory.

A breaker opens when, over a sliding window with at least ``min_calls`` calls, the failure ratio
reaches ``failure_ratio`` — or after ``consecutive_failures`` failures in a row. Open, it refuses
calls (fallback chains skip it without waiting) for ``open_s``, doubling on every re-open up to
``max_open_s``. Then one probe at a time is let through (half-open): success closes it, failure
opens it again. A provider that rejects our credentials rests for ``credentials_cooldown_s``.

A retry budget caps retries at ``ratio x requests + floor`` over a sliding window, so a
failing upstream sees at most ~20% extra load from us instead of a retry storm.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from enum import IntEnum

from sidecar.config import BreakerSettings

Clock = Callable[[], float]


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(self, config: BreakerSettings, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.state = State.CLOSED
        self._calls: deque[tuple[float, bool]] = deque()  # (time, failed) within the window
        self._failures_in_window = 0
        self._consecutive = 0
        self._opened_at = 0.0
        self._open_for = config.open_s
        self._probing = False

    def allow(self) -> bool:
        """May a call go through now? In half-open state, only one probe at a time."""
        if self.state is State.OPEN:
            if self.clock() - self._opened_at < self._open_for:
                return False
            self.state = State.HALF_OPEN
        if self.state is State.HALF_OPEN:
            if self._probing:
                return False
            self._probing = True
        return True

    def record(self, *, failed: bool) -> None:
        if self.state is State.HALF_OPEN:
            self._probing = False
            if failed:
                self._open(double=True)
            else:
                self._close()
            return
        now = self.clock()
        self._calls.append((now, failed))
        self._failures_in_window += failed
        self._consecutive = self._consecutive + 1 if failed else 0
        self._forget_before(now - self.config.window_s)
        calls = len(self._calls)
        ratio_tripped = (
            calls >= self.config.min_calls
            and self._failures_in_window / calls >= self.config.failure_ratio
        )
        if failed and (ratio_tripped or self._consecutive >= self.config.consecutive_failures):
            self._open(double=False)

    def release(self) -> None:
        """A probe that ended without a verdict (client went away): let another one try."""
        self._probing = False

    def force_open(self, seconds: float) -> None:
        self.state = State.OPEN
        self._opened_at = self.clock()
        self._open_for = seconds

    def _open(self, *, double: bool) -> None:
        if double:
            self._open_for = min(self._open_for * 2, self.config.max_open_s)
        self.state = State.OPEN
        self._opened_at = self.clock()

    def _close(self) -> None:
        self.state = State.CLOSED
        self._open_for = self.config.open_s
        self._calls.clear()
        self._failures_in_window = 0
        self._consecutive = 0

    def _forget_before(self, horizon: float) -> None:
        while self._calls and self._calls[0][0] < horizon:
            _, failed = self._calls.popleft()
            self._failures_in_window -= failed

    @property
    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        if self.state is not State.OPEN:
            return 0.0
        return max(0.0, self._open_for - (self.clock() - self._opened_at))


# Model names come from clients: cap the keys we track so random names cannot grow memory.
MAX_KEYS = 2048


class Breakers:
    """Every breaker, keyed by (provider, model); created on first use, at most MAX_KEYS."""

    def __init__(self, config: BreakerSettings, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._resting: dict[str, float] = {}  # provider -> rests until (bad credentials)

    def get(self, provider: str, model: str) -> CircuitBreaker:
        key = (provider, model)
        breaker = self._breakers.get(key)
        if breaker is None:
            if len(self._breakers) >= MAX_KEYS:
                self._make_room()
            breaker = self._breakers[key] = CircuitBreaker(self.config, self.clock)
        return breaker

    def _make_room(self) -> None:
        """Forget closed breakers (only their recent history is lost), else the oldest half."""
        closed = [key for key, b in self._breakers.items() if b.state is State.CLOSED]
        victims = closed or list(self._breakers)[: MAX_KEYS // 2]
        for key in victims:
            del self._breakers[key]

    def provider_resting(self, provider: str) -> bool:
        return self._resting.get(provider, 0.0) > self.clock()

    def rest_left_s(self, provider: str) -> float:
        """Seconds until a provider that refused our credentials is tried again."""
        return max(0.0, self._resting.get(provider, 0.0) - self.clock())

    def rest_provider(self, provider: str) -> None:
        self._resting[provider] = self.clock() + self.config.credentials_cooldown_s

    def states(self) -> Iterator[tuple[str, str, State]]:
        for (provider, model), breaker in self._breakers.items():
            if breaker.state is State.OPEN and breaker.retry_in_s == 0:
                yield provider, model, State.HALF_OPEN  # it will probe on the next call
            else:
                yield provider, model, breaker.state


class RetryBudget:
    """Retries allowed per key: at most ``ratio x requests + floor`` in the sliding window."""

    def __init__(
        self, *, ratio: float, floor: int, window_s: float, clock: Clock = time.monotonic
    ) -> None:
        self.ratio = ratio
        self.floor = floor
        self.window_s = window_s
        self.clock = clock
        self._requests: dict[tuple[str, str], deque[float]] = {}
        self._retries: dict[tuple[str, str], deque[float]] = {}

    @property
    def tracked(self) -> int:
        """How many provider x model keys the budget remembers."""
        return len(self._requests)

    def request(self, key: tuple[str, str]) -> None:
        if key not in self._requests and len(self._requests) >= MAX_KEYS:
            self._make_room()
        now = self.clock()
        # Trimmed on every request so the window stays bounded even when nothing fails.
        self._trim(self._requests.setdefault(key, deque()), now).append(now)

    def try_retry(self, key: tuple[str, str]) -> bool:
        """Spend one retry if the budget has room; False means do not retry."""
        now = self.clock()
        requests = self._trim(self._requests.setdefault(key, deque()), now)
        retries = self._trim(self._retries.setdefault(key, deque()), now)
        if len(retries) >= self.ratio * len(requests) + self.floor:
            return False
        retries.append(now)
        return True

    def _make_room(self) -> None:
        """Forget keys with nothing in the window, else the oldest half."""
        now = self.clock()
        idle = [key for key, times in self._requests.items() if not self._trim(times, now)]
        for key in idle or list(self._requests)[: MAX_KEYS // 2]:
            del self._requests[key]
            self._retries.pop(key, None)

    def _trim(self, times: deque[float], now: float) -> deque[float]:
        horizon = now - self.window_s
        while times and times[0] < horizon:
            times.popleft()
        return times
