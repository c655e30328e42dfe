"""Circuit breakers and retry budgets, on a fake clock."""

from __future__ import annotations

from sidecar.config import BreakerSettings
from sidecar.upstream.breaker import MAX_KEYS, Breakers, CircuitBreaker, RetryBudget, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> State:
    """The current state (a call, so the type checker does not pin it between mutations)."""
    return breaker.state


CONFIG = BreakerSettings(
    window_s=30, min_calls=10, failure_ratio=0.5, consecutive_failures=5, open_s=5, max_open_s=40
)


def test_opens_after_consecutive_failures_and_refuses_calls() -> None:
    """Five failures in a row open the circuit; while open, calls are refused without waiting."""
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(4):
        breaker.record(failed=True)
    assert state(breaker) is State.CLOSED
    breaker.record(failed=True)
    assert state(breaker) is State.OPEN
    assert not breaker.allow()
    assert breaker.retry_in_s == 5


def test_opens_on_failure_ratio_once_there_are_enough_calls() -> None:
    """Half the calls failing over the window opens it, but only with min_calls calls."""
    breaker = CircuitBreaker(CONFIG, Clock())
    for i in range(9):
        breaker.record(failed=i % 2 == 0)  # 5 of 9 failed, never 5 in a row
    assert state(breaker) is State.CLOSED
    breaker.record(failed=True)  # 6 of 10
    assert state(breaker) is State.OPEN


def test_old_failures_leave_the_window() -> None:
    """Failures older than window_s no longer count toward the ratio."""
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(4):
        breaker.record(failed=True)
    clock.now += 31
    for _ in range(6):
        breaker.record(failed=False)
    breaker.record(failed=True)
    assert state(breaker) is State.CLOSED


def test_half_open_lets_one_probe_through_and_recovers() -> None:
    """After open_s one probe may pass; its success closes the circuit."""
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(5):
        breaker.record(failed=True)
    clock.now += 5
    assert breaker.allow()  # the probe
    assert state(breaker) is State.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record(failed=False)
    assert state(breaker) is State.CLOSED
    assert breaker.allow()


def test_failed_probe_doubles_the_open_time_up_to_the_cap() -> None:
    """Each failed probe re-opens for twice as long, at most max_open_s."""
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(5):
        breaker.record(failed=True)
    waits = []
    for _ in range(5):
        clock.now += breaker.retry_in_s
        assert breaker.allow()
        breaker.record(failed=True)
        waits.append(breaker.retry_in_s)
    assert waits == [10, 20, 40, 40, 40]


def test_a_probe_without_verdict_frees_the_slot() -> None:
    """A probe whose client went away lets the next call probe instead."""
    clock = Clock()
    breaker = CircuitBreaker(CONFIG, clock)
    for _ in range(5):
        breaker.record(failed=True)
    clock.now += 5
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_registry_reports_states_and_rests_providers() -> None:
    """States are listed per provider and model; a resting provider is reported as resting."""
    clock = Clock()
    breakers = Breakers(CONFIG, clock)
    for _ in range(5):
        breakers.get("openai", "gpt-4o").record(failed=True)
    breakers.get("openai", "gpt-4")
    assert sorted(breakers.states()) == [
        ("openai", "gpt-4", State.CLOSED),
        ("openai", "gpt-4o", State.OPEN),
    ]
    breakers.rest_provider("openai")
    assert breakers.provider_resting("openai")
    clock.now += CONFIG.credentials_cooldown_s
    assert not breakers.provider_resting("openai")


def test_retry_budget_allows_ratio_of_requests_plus_floor() -> None:
    """With ratio 0.2 and floor 3, 100 requests in the window allow 23 retries."""
    clock = Clock()
    budget = RetryBudget(ratio=0.2, floor=3, window_s=10, clock=clock)
    key = ("openai", "gpt-4o")
    for _ in range(100):
        budget.request(key)
    allowed = sum(budget.try_retry(key) for _ in range(100))
    assert allowed == 23
    clock.now += 11  # the window moved on: requests and retries are forgotten
    assert budget.try_retry(key)


def test_random_model_names_cannot_grow_the_registries() -> None:
    """Breakers and budgets track at most MAX_KEYS models; open circuits survive the pruning."""
    clock = Clock()
    breakers = Breakers(CONFIG, clock)
    for _ in range(5):
        breakers.get("openai", "gpt-4o").record(failed=True)
    budget = RetryBudget(ratio=0.2, floor=3, window_s=10, clock=clock)
    for i in range(MAX_KEYS * 3):
        breakers.get("openai", f"random-{i}")
        budget.request(("openai", f"random-{i}"))
        clock.now += 0.01
    states = {(provider, model): state for provider, model, state in breakers.states()}
    assert len(states) <= MAX_KEYS
    assert states[("openai", "gpt-4o")] is not State.CLOSED  # the failing model is remembered
    assert budget.tracked <= MAX_KEYS
