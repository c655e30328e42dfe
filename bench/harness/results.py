"""What the overhead benchmark reports: latency percentiles and one result per section.

These dataclasses are the JSON schema too: ``dataclasses.asdict`` writes them field by field, so
a renamed or reordered field changes the results file. All times are milliseconds, except the
CPU costs (microseconds per request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OVERHEAD_HEADER = "X-Sidecar-Overhead-Ms"  # the sidecar's own account of its time per request


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def median(values: Sequence[float]) -> float | None:
    return round(float(np.median(values)), 3) if values else None


@dataclass(slots=True)
class Latency:
    """Percentiles in milliseconds of a list of durations in seconds (None when empty)."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            return cls(0, None, None, None, None, None)
        arr = np.asarray(seconds, dtype=np.float64)
        p50, p95, p99 = (float(v) for v in np.percentile(arr, [50, 95, 99]))
        return cls(len(arr), ms(p50), ms(p95), ms(p99), ms(float(arr.mean())), ms(arr.max()))


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


@dataclass(slots=True)
class Added:
    """percentile(proxied) - percentile(direct), in milliseconds."""

    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def between(cls, direct: Latency, proxied: Latency) -> Added:
        return cls(
            _minus(proxied.p50, direct.p50),
            _minus(proxied.p95, direct.p95),
            _minus(proxied.p99, direct.p99),
        )


@dataclass(slots=True)
class SequentialResult:
    requests_per_target: int
    warmup: int
    truncated: bool  # the time budget ran out before the requested count
    errors: dict[str, int]
    direct: Latency
    proxied: Latency
    added: Added
    sidecar_overhead_ms_median: float | None  # of the OVERHEAD_HEADER values
    sidecar_cpu_us_per_request: float | None  # the sidecar's CPU time / proxied requests


@dataclass(slots=True)
class RateRun:
    target: str
    rate: float
    duration_s: float
    scheduled: int
    sent: int
    ok: int
    errors: int
    achieved_rps: float
    latency_ms: Latency
    gen_lag_p99_ms: float | None
    cpu_us_per_request: dict[str, float] | None  # each server's CPU time / requests finished
    saturated: bool
    reason: str | None


@dataclass(slots=True)
class RatePair:
    rate: float
    direct: RateRun
    proxied: RateRun
    added: Added


@dataclass(slots=True)
class ThroughputRun:
    target: str
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    latency_ms: Latency
    cpu_us_per_request: dict[str, float] | None


@dataclass(slots=True)
class ThroughputResult:
    direct: ThroughputRun
    proxied: ThroughputRun
    proxied_over_direct: float | None


@dataclass(slots=True)
class StreamingResult:
    requests_per_target: int
    chunk_delay_ms: float
    truncated: bool
    errors: dict[str, int]
    ttfc_direct: Latency
    ttfc_proxied: Latency
    ttfc_added: Added
    total_direct: Latency
    total_proxied: Latency
    sidecar_cpu_us_per_request: float | None  # the sidecar's CPU time / proxied streams


@dataclass(slots=True)
class MachineLoad:
    """What else ran while a section was measured, in cores (1.0 = one core fully busy)."""

    other_processes_cores: float
    steal_cores: float


@dataclass(slots=True)
class TargetCheck:
    name: str
    limit_ms: float
    measured_ms: float | None
    met: bool | None  # None: not measured in this run


def request_path_us(
    timings: dict[str, list[int]], base: str = "off"
) -> dict[str, dict[str, float]]:
    """Per configuration, p50/p95/p99 of nanosecond timings in µs, and each added over ``base``."""
    reference = np.percentile(np.array(timings[base]) / 1000, [50, 95, 99])
    rows: dict[str, dict[str, float]] = {}
    for mode, values in timings.items():
        p50, p95, p99 = np.percentile(np.array(values) / 1000, [50, 95, 99])
        rows[mode] = {
            "requests": len(values),
            "p50_us": round(float(p50), 1),
            "p95_us": round(float(p95), 1),
            "p99_us": round(float(p99), 1),
            "added_p50_us": round(float(p50 - reference[0]), 1),
            "added_p95_us": round(float(p95 - reference[1]), 1),
            "added_p99_us": round(float(p99 - reference[2]), 1),
        }
    return rows
