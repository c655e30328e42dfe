"""What the overhead benchmark shows: a rich table per section, the target checks, the machine.

Tables go to stdout (``out``), progress and warnings to stderr (``err``).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence

from rich.console import Console
from rich.table import Table

from bench.harness.results import (
    OVERHEAD_HEADER,
    Added,
    Latency,
    MachineLoad,
    RatePair,
    SequentialResult,
    StreamingResult,
    TargetCheck,
    ThroughputResult,
)

out = Console(width=None if sys.stdout.isatty() else 160)  # tables stay whole in logs
err = Console(stderr=True)

BUSY_CORES = 0.1  # other load above this makes a section's figures suspect


def _table(title: str, columns: Sequence[str], left: Collection[str] = ("",)) -> Table:
    """Labels (the ``left`` columns) align left, figures right."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    return table


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _latency_cells(lat: Latency) -> list[str]:
    return [_f(lat.p50), _f(lat.p95), _f(lat.p99)]


def _added_cells(added: Added) -> list[str]:
    return [f"[bold]{_f(v)}[/bold]" for v in (added.p50, added.p95, added.p99)]


def _cpu_cells(cpu: dict[str, float] | None) -> list[str]:
    if cpu is None:
        return ["-", "-"]
    return [_f(cpu.get("simulator"), 0), _f(cpu.get("sidecar"), 0)]


def sequential_table(res: SequentialResult) -> Table:
    table = _table(
        f"1. Sequential added latency (ms, {res.requests_per_target} per target)",
        ("", "p50", "p95", "p99", "mean", "errors"),
    )
    for name, lat in (("direct", res.direct), ("proxied", res.proxied)):
        table.add_row(name, *_latency_cells(lat), _f(lat.mean), str(res.errors[name]))
    table.add_row("[bold]added[/bold]", *_added_cells(res.added), "", "")
    reported = _f(res.sidecar_overhead_ms_median)
    table.add_row(f"sidecar self-reported ({OVERHEAD_HEADER}, median)", reported, "", "", "", "")
    cpu = _f(res.sidecar_cpu_us_per_request, 0)
    table.add_row("sidecar CPU per proxied request (µs)", cpu, "", "", "", "")
    return table


def open_loop_table(pairs: Sequence[RatePair], duration_s: float) -> Table:
    table = _table(
        f"2. Open loop, fixed rates ({duration_s:g} s each; latency in ms)",
        (
            *("rate", "target", "achieved", "errors", "p50", "p95", "p99", "gen lag p99"),
            *("added p50", "added p95", "added p99", "sim µs/req", "sidecar µs/req", "status"),
        ),
        left=("target", "status"),
    )
    for pair in pairs:
        for run in (pair.direct, pair.proxied):
            added = _added_cells(pair.added) if run is pair.proxied else ["", "", ""]
            status = "[red]saturated[/red]" if run.saturated else "ok"
            table.add_row(
                f"{pair.rate:g}",
                run.target,
                f"{run.achieved_rps:.1f}",
                str(run.errors),
                *_latency_cells(run.latency_ms),
                _f(run.gen_lag_p99_ms),
                *added,
                *_cpu_cells(run.cpu_us_per_request),
                status,
            )
    reasons = [
        f"{run.rate:g} RPS {run.target}: {run.reason}"
        for pair in pairs
        for run in (pair.direct, pair.proxied)
        if run.saturated
    ]
    if reasons:
        table.caption = "saturated: " + "; ".join(reasons)
    return table


def throughput_table(res: ThroughputResult) -> Table:
    table = _table(
        f"3. Max throughput (closed loop, concurrency {res.direct.concurrency}, "
        f"{res.direct.duration_s:g} s)",
        (
            "",
            "requests/s",
            "requests",
            "errors",
            "p50 ms",
            "p99 ms",
            "sim µs/req",
            "sidecar µs/req",
        ),
    )
    for run in (res.direct, res.proxied):
        table.add_row(
            run.target,
            f"{run.rps:.1f}",
            str(run.requests),
            str(run.errors),
            _f(run.latency_ms.p50),
            _f(run.latency_ms.p99),
            *_cpu_cells(run.cpu_us_per_request),
        )
    table.caption = f"proxied / direct: {_f(res.proxied_over_direct)}"
    return table


def streaming_table(res: StreamingResult) -> Table:
    table = _table(
        f"4. Streaming time to first chunk (ms, {res.requests_per_target} per target, "
        f"{res.chunk_delay_ms:g} ms between chunks)",
        ("", "TTFC p50", "TTFC p95", "TTFC p99", "total p50", "errors"),
    )
    rows = (
        ("direct", res.ttfc_direct, res.total_direct),
        ("proxied", res.ttfc_proxied, res.total_proxied),
    )
    for name, ttfc, total in rows:
        table.add_row(name, *_latency_cells(ttfc), _f(total.p50), str(res.errors[name]))
    table.add_row("[bold]added[/bold]", *_added_cells(res.ttfc_added), "", "")
    cpu = _f(res.sidecar_cpu_us_per_request, 0)
    table.add_row("sidecar CPU per proxied stream (µs)", cpu, "", "", "", "")
    return table


def check_targets(
    seq: SequentialResult, pairs: Sequence[RatePair], stream: StreamingResult
) -> list[TargetCheck]:
    """The team's targets: sequential added p50, added p99 at 500 RPS, streaming added TTFC."""
    at_500 = next((p for p in pairs if p.rate == 500), None)
    measured = (
        ("sequential added p50", 0.5, seq.added.p50),
        ("500 RPS added p99", 5.0, at_500.added.p99 if at_500 else None),
        ("streaming TTFC added p50", 1.0, stream.ttfc_added.p50),
    )
    return [
        TargetCheck(name, limit, value, None if value is None else value <= limit)
        for name, limit, value in measured
    ]


def targets_table(checks: Sequence[TargetCheck]) -> Table:
    table = _table(
        "Targets (this machine, load generator included)",
        ("figure", "target ms", "measured ms", "met"),
        left=("figure",),
    )
    met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "not measured"}
    for check in checks:
        table.add_row(check.name, f"<= {check.limit_ms:g}", _f(check.measured_ms), met[check.met])
    return table


def machine_table(load: dict[str, MachineLoad | None]) -> Table:
    table = _table(
        "Machine: CPU taken by everything else while measuring (cores)",
        ("section", "other processes", "VM steal", "clean"),
        left=("section",),
    )
    for section, value in load.items():
        if value is None:
            table.add_row(section, "-", "-", "unknown")
            continue
        clean = max(value.other_processes_cores, value.steal_cores) <= BUSY_CORES
        verdict = "[green]yes[/green]" if clean else "[red]no: rerun on a quiet machine[/red]"
        table.add_row(
            section, f"{value.other_processes_cores:.2f}", f"{value.steal_cores:.2f}", verdict
        )
    return table


def microseconds_table(
    title: str, first: str, rows: dict[str, dict[str, float]], columns: dict[str, str]
) -> Table:
    """In-process figures (µs) per configuration: ``columns`` maps a header to a row key; keys
    starting with ``added`` are signed."""
    table = _table(title, [first, *columns], left=(first,))
    for name, row in rows.items():
        cells = [f"{row[key]:+.1f}" if key.startswith("added") else f"{row[key]:.1f}"
                 for key in columns.values()]  # fmt: skip
        table.add_row(name, *cells)
    return table
