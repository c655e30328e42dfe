"""Rich tables for a performance report (``llm-sidecar report`` and the demo).

The report is checked against the shape rendering needs (SPEC's keys, with their types) before
anything is drawn, so an answer that is not a report is refused as a whole instead of failing
half-way with a KeyError. Keys SPEC does not list are optional: a sidecar of another version
still renders, with a dash where a number is missing. Each table fits an 80-column terminal.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from sidecar.telemetry.stats import is_client_error


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Latency(_Shape):
    p50: float
    p95: float
    p99: float


class OperationRow(_Shape):
    operation: str
    count: int
    success_rate: float
    error_rate: float | None = None
    client_error_rate: float | None = None
    refused_rate: float | None = None
    cache_hit_rate: float
    latency_ms: Latency
    average_latency_ms: float | None = None
    slow_operations: int | None = None


class ModelRow(_Shape):
    model: str
    count: int
    error_rate: float | None = None
    client_error_rate: float | None = None
    latency_ms: Latency
    cost_usd: float
    cost_share: float


class ReportSummary(_Shape):
    total_operations: int
    average_latency_ms: float
    error_rate: float
    client_error_rate: float | None = None
    refused_rate: float | None = None
    cache_hit_rate: float
    total_cost_usd: float
    slow_operations: int
    window_s: float | None = None
    errors_by_code: dict[str, int] = Field(default_factory=dict)
    refused_by_code: dict[str, int] = Field(default_factory=dict)


class Report(_Shape):
    summary: ReportSummary
    by_operation: list[OperationRow]
    by_model: list[ModelRow] = Field(default_factory=list)
    recommendations: list[str]


PIPED_WIDTH = 200  # wide enough for every table: piped output keeps whole numbers


def table_console() -> Console:
    """A terminal's own width; piped into a file, a log or CI (where rich assumes 80
    columns and would cut costs to "0.04…"), wide enough that no column is cut."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def parse_report(value: object) -> Report:
    """The report as rendering needs it; pydantic's ValidationError (a ValueError) otherwise."""
    return Report.model_validate(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _share(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _table(title: str, *columns: str, names: int = 1) -> Table:
    """A table whose first ``names`` columns are names (left) and the rest numbers (right)."""
    table = Table(title=title)
    for name in columns[:names]:
        table.add_column(name, no_wrap=True)  # names stay whole; headers wrap instead
    for name in columns[names:]:
        table.add_column(name, justify="right")
    return table


def _pairs(title: str, rows: list[tuple[str, str]]) -> Table:
    """A headerless table of labelled figures."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, value)
    return table


def _advice(lines: list[str], console: Console) -> None:
    if lines:
        console.print("[bold]Recommendations[/bold]")
        for line in lines:
            console.print(f"  • {line}")


def print_report(report: object, console: Console) -> None:
    """Render a report (the JSON of ``GET /sidecar/report``, or an already parsed Report)."""
    parsed = report if isinstance(report, Report) else parse_report(report)
    console.print(_overview(parsed.summary))
    console.print(_operations(parsed.by_operation))
    console.print(_latencies(parsed.by_operation))
    if parsed.by_model:
        console.print(_models(parsed.by_model))
    if parsed.summary.errors_by_code or parsed.summary.refused_by_code:
        console.print(_error_codes(parsed.summary.errors_by_code, parsed.summary.refused_by_code))
    _advice(parsed.recommendations, console)


def _overview(summary: ReportSummary) -> Table:
    window = summary.window_s
    title = "llm-sidecar report" + (f" (last {window:g} s)" if window is not None else "")
    return _pairs(
        title,
        [
            ("operations", f"{summary.total_operations:,}"),
            ("average latency", f"{_ms(summary.average_latency_ms)} ms"),
            ("error rate (upstream and sidecar)", _share(summary.error_rate, 2)),
            ("client error rate (4xx)", _share(summary.client_error_rate, 2)),
            ("refused by the sidecar's policies", _share(summary.refused_rate, 2)),
            ("cache hit rate", _share(summary.cache_hit_rate, 2)),
            ("total cost", f"${summary.total_cost_usd:.6f}"),
            ("slow operations", str(summary.slow_operations)),
        ],
    )


def _operations(rows: list[OperationRow]) -> Table:
    table = _table(
        "By operation",
        "operation",
        "count",
        "success",
        "errors",
        "client errors",
        "refused",
        "cache hits",
        "slow",
    )
    for row in rows:
        table.add_row(
            row.operation,
            f"{row.count:,}",
            _share(row.success_rate),
            _share(row.error_rate),
            _share(row.client_error_rate),
            _share(row.refused_rate),
            _share(row.cache_hit_rate),
            "-" if row.slow_operations is None else str(row.slow_operations),
        )
    return table


def _latencies(rows: list[OperationRow]) -> Table:
    table = _table(
        "Latency by operation, ms (p50/p95/p99 computed with numpy)",
        "operation",
        "p50",
        "p95",
        "p99",
        "average",
    )
    for row in rows:
        latency = row.latency_ms
        table.add_row(
            row.operation,
            _ms(latency.p50),
            _ms(latency.p95),
            _ms(latency.p99),
            _ms(row.average_latency_ms),
        )
    return table


def _models(rows: list[ModelRow]) -> Table:
    table = _table(
        "By model", "model", "count", "errors", "client errors", "p95 ms", "cost USD", "of cost"
    )
    for row in rows:
        table.add_row(
            row.model,
            f"{row.count:,}",
            _share(row.error_rate),
            _share(row.client_error_rate),
            _ms(row.latency_ms.p95),
            f"{row.cost_usd:.6f}",
            _share(row.cost_share, 0),
        )
    return table


def _error_codes(errors: dict[str, int], refused: dict[str, int]) -> Table:
    table = _table("Errors by code", "code", "count")
    table.add_column("counted as")
    for code, count in errors.items():
        table.add_row(code, str(count), "client error" if is_client_error(code) else "error")
    for code, count in refused.items():
        table.add_row(code, str(count), "refused by policy")
    return table


def print_usage(report: dict[str, Any], console: Console) -> None:
    """``llm-sidecar usage``: totals, the split by model and by operation, what fallbacks and
    retries cost, the budget, the advice."""
    budget, cache = report["budget"], report["cache"]
    unpriced = report["unpriced_requests"]
    cost = f"${report['total_cost_usd']}" + (f" + {unpriced:,} unknown" if unpriced else "")
    totals = [("requests", f"{report['requests']:,}"), ("cost", cost)]
    if unpriced:
        totals.append(("requests of unpriced models", f"{unpriced:,}"))
    totals += [
        ("cache hits (saved)", f"{cache['hits']:,} (${cache['saved_usd']})"),
        (f"budget {budget['month']}", f"${budget['monthly_usd']}"),
        ("spent this month", f"${budget['spent_usd']}"),
        ("remaining", f"${budget['remaining_usd']}"),
    ]
    since = report["since"][:10]
    console.print(
        _pairs(f"usage of {report['user']} this {report['period']} (since {since})", totals)
    )
    models = _table(
        "By model", "model", "requests", "input tokens", "output tokens", "images", "cost USD"
    )
    for row in report["by_model"]:
        models.add_row(
            row["model"],
            f"{row['requests']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
            f"{row['images']:,}",
            _cost(row),
        )
    console.print(models)
    operations = _table(
        "By operation", "operation", "model", "requests", "mean output tokens", "cost USD",
        "cache hits", "saved USD", names=2,
    )  # fmt: skip
    for row in report["by_operation"]:
        operations.add_row(
            row["operation"],
            row["model"],
            f"{row['requests']:,}",
            f"{row['mean_output_tokens']:,}",
            _cost(row),
            f"{row['cache_hits']:,}",
            row["saved_usd"],
        )
    console.print(operations)
    extra = report["fallbacks_and_retries"]
    money = [
        ("answered by a fallback model", f"{extra['fallback_requests']:,}"),
        ("their cost", f"${extra['fallback_cost_usd']}"),
        ("retried requests", f"{extra['retried_requests']:,}"),
        ("extra upstream calls", f"{extra['extra_upstream_calls']:,}"),
        ("failed requests", f"{extra['failed_requests']:,}"),
        ("their cost (streams cut mid-way are billed)", f"${extra['failed_cost_usd']}"),
    ]
    console.print(_pairs("Fallbacks, retries and failed calls", money))
    _advice(report["recommendations"], console)


def _cost(row: dict[str, Any]) -> str:
    """A row's cost: "unknown" when no request of it had a price, the known part and how many
    are unknown when some had none (never a silent 0)."""
    cost: str | None = row["cost_usd"]
    unpriced = int(row.get("unpriced_requests") or 0)
    if cost is None:
        return "unknown"
    return f"{cost} + {unpriced:,} unknown" if unpriced else cost
