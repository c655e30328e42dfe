"""The performance report of ``GET /sidecar/report`` and ``llm-sidecar report``.

Numbers come from the rolling statistics (numpy, over the sliding window); recommendations are
derived from the same numbers and the configuration, so each one says what was measured and
names a setting that is not already in place, or a check that is worth making.

Errors are split in three: ``error_rate`` counts failures of the provider or the sidecar (what
retries, fallbacks and circuit breakers are about); ``client_error_rate`` counts requests refused
for their own sake (invalid input, context too long, too large, unauthorised, 4xx pass-through);
``refused_rate`` counts requests the sidecar's own policies refused (its rate limits, a user's
budget, the input and output checks), which say nothing about the provider. ``errors_by_code``
and ``refused_by_code`` count them by their error envelope code (SPEC).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from sidecar.config import Operation, Settings
from sidecar.openai_api import API_SEGMENTS, OTHER_OPERATION
from sidecar.telemetry.recorder import Telemetry
from sidecar.telemetry.stats import Summary, is_client_error

MIN_SAMPLE = 20  # fewer requests than this say too little to recommend anything
ERROR_RATE_ADVICE = 0.05  # upstream error rate above which the report says something


def _usd(micros: int) -> float:
    return float(Decimal(micros) / 1_000_000)


def _rate(part: int, total: int) -> float:
    return round(part / total, 4) if total else 0.0


def _latency(summary: Summary) -> dict[str, float]:
    return {
        "p50": round(summary.p50_ms, 2),
        "p95": round(summary.p95_ms, 2),
        "p99": round(summary.p99_ms, 2),
    }


def build_report(telemetry: Telemetry, settings: Settings) -> dict[str, Any]:
    operations = {k: v for k, v in telemetry.stats.by_operation().items() if v.count}
    models = {k: v for k, v in telemetry.stats.by_model().items() if v.count}
    return {
        "summary": _summary(operations, telemetry.stats.window_s),
        "by_operation": [
            _operation_row(name, s, settings)
            for name, s in sorted(operations.items(), key=lambda kv: -kv[1].count)
        ],
        "by_model": _model_rows(models),
        "recommendations": recommendations(operations, models, settings),
    }


def _summary(operations: dict[str, Summary], window_s: float) -> dict[str, Any]:
    total = sum(s.count for s in operations.values())
    codes = sum((Counter(s.error_codes) for s in operations.values()), Counter())
    refused = sum((Counter(s.refused_codes) for s in operations.values()), Counter())
    return {
        "total_operations": total,
        "average_latency_ms": round(
            1000 * sum(s.latency_sum_s for s in operations.values()) / total, 2
        )
        if total
        else 0.0,
        "error_rate": _rate(sum(s.upstream_errors for s in operations.values()), total),
        "client_error_rate": _rate(sum(s.client_errors for s in operations.values()), total),
        "refused_rate": _rate(refused.total(), total),
        "cache_hit_rate": _rate(sum(s.cache_hits for s in operations.values()), total),
        "total_cost_usd": _usd(sum(s.cost_micros for s in operations.values())),
        "slow_operations": sum(s.slow for s in operations.values()),
        "window_s": window_s,
        "errors_by_code": dict(codes.most_common()),
        "refused_by_code": dict(refused.most_common()),
    }


def _operation_row(name: str, s: Summary, settings: Settings) -> dict[str, Any]:
    return {
        "operation": name,
        "count": s.count,
        "success_rate": round(s.success_rate, 4),
        "error_rate": round(s.error_rate, 4),
        "client_error_rate": round(s.client_error_rate, 4),
        "refused_rate": round(s.refused_rate, 4),
        "cache_hit_rate": round(s.cache_hit_rate, 4),
        "repeat_rate": round(s.repeat_rate, 4),
        "latency_ms": _latency(s),
        "average_latency_ms": round(s.average_ms, 2),
        "slow_operations": s.slow,
        "slow_threshold_ms": settings.operation(name).slow_ms,
        "cost_usd": _usd(s.cost_micros),
    }


def _model_rows(models: dict[str, Summary]) -> list[dict[str, Any]]:
    total_cost = sum(s.cost_micros for s in models.values())
    return [
        {
            "model": name,
            "count": s.count,
            "error_rate": round(s.error_rate, 4),
            "client_error_rate": round(s.client_error_rate, 4),
            "refused_rate": round(s.refused_rate, 4),
            "latency_ms": _latency(s),
            "cost_usd": _usd(s.cost_micros),
            "cost_share": _rate(s.cost_micros, total_cost),
        }
        for name, s in sorted(models.items(), key=lambda kv: -kv[1].cost_micros or -kv[1].count)
    ]


def recommendations(
    operations: dict[str, Summary], models: dict[str, Summary], settings: Settings
) -> list[str]:
    advice: list[str] = []
    for name, s in operations.items():
        if s.count < MIN_SAMPLE:
            continue
        config = settings.operation(name)
        advice += _latency_advice(name, s, config)
        advice += _error_advice(name, s, config)
        advice += _cache_advice(name, s, config)
    advice += _cost_advice(models)
    return advice


def _latency_advice(name: str, s: Summary, config: Operation) -> list[str]:
    threshold = config.slow_ms
    if not threshold or s.p95_ms <= threshold:
        return []
    return [
        f"{name} p95 {s.p95_ms / 1000:.2f} s exceeds its {threshold / 1000:g} s threshold "
        f"(operations.{name}.slow_ms): consider a faster model or streaming"
    ]


def _error_advice(name: str, s: Summary, config: Operation) -> list[str]:
    """Advice on upstream errors only: client errors are the calling application's to fix."""
    if s.error_rate <= ERROR_RATE_ADVICE:
        return []
    upstream_codes = {c: n for c, n in s.error_codes.items() if not is_client_error(c)}
    codes = ", ".join(f"{c} {n}" for c, n in Counter(upstream_codes).most_common(3))
    measured = f"{name} upstream error rate is {s.error_rate:.1%}" + (
        f" ({codes})" if codes else ""
    )
    check = "check the provider's status and the circuit breakers in GET /readyz"
    # Fallbacks apply to model calls; forwarded API paths (files, batches, ...) have none.
    if name in API_SEGMENTS or name == OTHER_OPERATION:
        return [f"{measured}: {check}"]
    if not config.fallbacks:
        return [
            f"{measured}: configure operations.{name}.fallbacks so another model can answer, "
            f"and {check}"
        ]
    chain = ", ".join(config.fallbacks)
    return [
        f"{measured} although operations.{name}.fallbacks is set ({chain}): {check}; "
        f"requests for models outside that chain are retried but never answered by another model"
    ]


def _cache_advice(name: str, s: Summary, config: Operation) -> list[str]:
    if s.repeat_rate < 0.1 or s.cache_hit_rate >= s.repeat_rate / 2:
        return []
    action = "raise" if config.cache_ttl_s else "set"
    return [
        f"cache hit rate on {name} is {s.cache_hit_rate:.0%}: identical requests repeat "
        f"{s.repeat_rate:.0%} of the time — {action} operations.{name}.cache_ttl_s"
    ]


def _cost_advice(models: dict[str, Summary]) -> list[str]:
    total_cost = sum(s.cost_micros for s in models.values())
    if not total_cost or len(models) < 2:
        return []
    return [
        f"{name} is {s.cost_micros / total_cost:.0%} of cost: route simpler operations to a "
        f"cheaper model"
        for name, s in models.items()
        if s.cost_micros / total_cost >= 0.5
    ]
