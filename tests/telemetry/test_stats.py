"""Rolling statistics: numpy percentiles over a window, in constant memory."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar.telemetry.stats import RollingStats


def test_percentiles_match_numpy_on_known_data() -> None:
    """p50/p95/p99 equal numpy's on the same latencies."""
    stats = RollingStats(capacity=1000)
    latencies = np.random.default_rng(1).lognormal(mean=-3, sigma=0.5, size=500)
    for value in latencies:
        stats.record("chat", "gpt-4o", float(value), ok=True)
    summary = stats.by_operation()["chat"]
    expected = np.percentile(latencies, [50, 95, 99]) * 1000
    assert [summary.p50_ms, summary.p95_ms, summary.p99_ms] == pytest.approx(list(expected))
    assert summary.average_ms == pytest.approx(latencies.mean() * 1000)


def test_rates_errors_cost_and_repeats() -> None:
    """Success, cache-hit and repeat rates, error codes and exact cost sums come out right."""
    stats = RollingStats()
    for i in range(10):
        stats.record(
            "intent",
            "gpt-4o-mini",
            0.01,
            ok=i != 0,
            cache_hit=i < 3,
            cost_micros=125,
            fingerprint=1 + i % 5,  # five distinct bodies, each twice
            error_code="RATE_LIMIT" if i == 0 else None,
        )
    summary = stats.by_operation()["intent"]
    assert summary.count == 10
    assert summary.success_rate == pytest.approx(0.9)
    assert summary.cache_hit_rate == pytest.approx(0.3)
    assert summary.repeat_rate == pytest.approx(0.5)
    assert summary.cost_micros == 1250
    assert summary.error_codes == {"RATE_LIMIT": 1}
    assert stats.by_model()["gpt-4o-mini"].count == 10


def test_memory_is_constant_however_many_requests() -> None:
    """A ring keeps only its capacity: the oldest requests are overwritten, arrays never grow."""
    stats = RollingStats(capacity=64)
    for i in range(10_000):
        stats.record("chat", "gpt-4o", i / 1000, ok=True)
    ring = stats.operations["chat"]
    assert ring.latency.shape == (64,)
    summary = stats.by_operation()["chat"]
    assert summary.count == 64
    # only the newest 64 remain: 9.936 s .. 9.999 s
    assert summary.p50_ms == pytest.approx(np.percentile(np.arange(9936, 10000), 50))


def test_requests_outside_the_window_are_ignored() -> None:
    """Only requests within window_s count; older ones drop out of the report."""
    stats = RollingStats(window_s=60)
    stats.record("chat", "gpt-4o", 0.5, ok=True)
    ring = stats.operations["chat"]
    ring.t[0] -= 120  # the request happened two minutes ago
    stats.record("chat", "gpt-4o", 0.1, ok=True)
    summary = stats.by_operation()["chat"]
    assert summary.count == 1
    assert summary.p99_ms == pytest.approx(100)
