"""Rich tables for a performance report (``llm-sidecar report`` and the demo)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def print_report(report: dict[str, Any], console: Console) -> None:
    summary = report["summary"]
    overview = Table(
        title=f"llm-sidecar report (last {summary['window_s']:g} s)", show_header=False
    )
    overview.add_column(style="bold")
    overview.add_column(justify="right")
    overview.add_row("operations", f"{summary['total_operations']:,}")
    overview.add_row("average latency", f"{_ms(summary['average_latency_ms'])} ms")
    overview.add_row("error rate", f"{summary['error_rate']:.2%}")
    overview.add_row("cache hit rate", f"{summary['cache_hit_rate']:.2%}")
    overview.add_row("total cost", f"${summary['total_cost_usd']:.6f}")
    overview.add_row("slow operations", str(summary["slow_operations"]))
    console.print(overview)

    operations = Table(title="By operation (p50/p95/p99 computed with numpy)")
    for name in (
        "operation",
        "count",
        "success",
        "cache hits",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "slow",
    ):
        operations.add_column(name, justify="left" if name == "operation" else "right")
    for row in report["by_operation"]:
        latency = row["latency_ms"]
        operations.add_row(
            row["operation"],
            f"{row['count']:,}",
            f"{row['success_rate']:.1%}",
            f"{row['cache_hit_rate']:.1%}",
            _ms(latency["p50"]),
            _ms(latency["p95"]),
            _ms(latency["p99"]),
            str(row["slow_operations"]),
        )
    console.print(operations)

    if report["by_model"]:
        models = Table(title="By model")
        for name in ("model", "count", "errors", "p95 ms", "cost USD", "share of cost"):
            models.add_column(name, justify="left" if name == "model" else "right")
        for row in report["by_model"]:
            models.add_row(
                row["model"],
                f"{row['count']:,}",
                f"{row['error_rate']:.1%}",
                _ms(row["latency_ms"]["p95"]),
                f"{row['cost_usd']:.6f}",
                f"{row['cost_share']:.0%}",
            )
        console.print(models)

    if errors := summary.get("errors_by_code"):
        table = Table(title="Errors by code")
        table.add_column("code")
        table.add_column("count", justify="right")
        for code, count in errors.items():
            table.add_row(code, str(count))
        console.print(table)

    if report["recommendations"]:
        console.print("[bold]Recommendations[/]")
        for advice in report["recommendations"]:
            console.print(f"  • {advice}")
