"""The performance report of ``GET /sidecar/report`` and ``llm-sidecar report``.

Numbers come from the rolling statistics (numpy, over the sliding window); recommendations are
derived from the same numbers, so each one says what was measured and what to change.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from sidecar.config import Settings
from sidecar.telemetry.recorder import Telemetry
from sidecar.telemetry.stats import Summary

MIN_SAMPLE = 20  # fewer requests than this say too little to recommend anything


def _usd(micros: int) -> float:
    return float(Decimal(micros) / 1_000_000)


def _latency(summary: Summary) -> dict[str, float]:
    return {
        "p50": round(summary.p50_ms, 2),
        "p95": round(summary.p95_ms, 2),
        "p99": round(summary.p99_ms, 2),
    }


def build_report(telemetry: Telemetry, settings: Settings) -> dict[str, Any]:
    operations = {k: v for k, v in telemetry.stats.by_operation().items() if v.count}
    models = {k: v for k, v in telemetry.stats.by_model().items() if v.count}
    total = sum(s.count for s in operations.values())
    total_cost = sum(s.cost_micros for s in operations.values())
    summary = {
        "total_operations": total,
        "average_latency_ms": round(
            1000 * sum(s.latency_sum_s for s in operations.values()) / total, 2
        )
        if total
        else 0.0,
        "error_rate": round(sum(s.errors for s in operations.values()) / total, 4)
        if total
        else 0.0,
        "cache_hit_rate": round(sum(s.cache_hits for s in operations.values()) / total, 4)
        if total
        else 0.0,
        "total_cost_usd": _usd(total_cost),
        "slow_operations": sum(s.slow for s in operations.values()),
        "window_s": telemetry.stats.window_s,
        "errors_by_code": dict(
            sum((Counter(s.error_codes) for s in operations.values()), Counter()).most_common()
        ),
    }
    by_operation = [
        {
            "operation": name,
            "count": s.count,
            "success_rate": round(s.success_rate, 4),
            "cache_hit_rate": round(s.cache_hit_rate, 4),
            "repeat_rate": round(s.repeat_rate, 4),
            "latency_ms": _latency(s),
            "average_latency_ms": round(s.average_ms, 2),
            "slow_operations": s.slow,
            "slow_threshold_ms": settings.operation(name).slow_ms,
            "cost_usd": _usd(s.cost_micros),
        }
        for name, s in sorted(operations.items(), key=lambda kv: -kv[1].count)
    ]
    by_model = [
        {
            "model": name,
            "count": s.count,
            "error_rate": round(1 - s.success_rate, 4),
            "latency_ms": _latency(s),
            "cost_usd": _usd(s.cost_micros),
            "cost_share": round(s.cost_micros / total_cost, 4) if total_cost else 0.0,
        }
        for name, s in sorted(models.items(), key=lambda kv: -kv[1].cost_micros or -kv[1].count)
    ]
    return {
        "summary": summary,
        "by_operation": by_operation,
        "by_model": by_model,
        "recommendations": recommendations(operations, models, settings),
    }


def recommendations(
    operations: dict[str, Summary], models: dict[str, Summary], settings: Settings
) -> list[str]:
    advice: list[str] = []
    for name, s in operations.items():
        threshold = settings.operation(name).slow_ms
        if threshold and s.count >= MIN_SAMPLE and s.p95_ms > threshold:
            advice.append(
                f"{name} p95 {s.p95_ms / 1000:.2f} s exceeds its {threshold / 1000:g} s threshold "
                f"(operations.{name}.slow_ms): consider a faster model or streaming"
            )
        if s.count >= MIN_SAMPLE and s.errors / s.count > 0.05:
            advice.append(
                f"{name} error rate is {s.errors / s.count:.1%}: check the provider's status "
                f"and configure operations.{name}.fallbacks"
            )
        if s.count >= MIN_SAMPLE and s.repeat_rate >= 0.1 and s.cache_hit_rate < s.repeat_rate / 2:
            ttl = settings.operation(name).cache_ttl_s
            action = "raise" if ttl else "set"
            advice.append(
                f"cache hit rate on {name} is {s.cache_hit_rate:.0%}: identical requests repeat "
                f"{s.repeat_rate:.0%} of the time — {action} operations.{name}.cache_ttl_s"
            )
    total_cost = sum(s.cost_micros for s in models.values())
    for name, s in models.items():
        share = s.cost_micros / total_cost if total_cost else 0.0
        if share >= 0.5 and len(models) > 1:
            advice.append(
                f"{name} is {share:.0%} of cost: route simpler operations to a cheaper model"
            )
    return advice
