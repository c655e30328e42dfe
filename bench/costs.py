"""What pricing and recording cost per request: the cost stage's own work, in-process.

The cost stage does two things around the upstream call: ``reserve`` (estimate, one budget
counter step) before it and ``settle`` (price, build and hand over the usage record, settle the
counter) after it. This times exactly those two calls for an exchange that went through the real
pipeline once (a canned upstream answer), with ``perf_counter_ns``, in two configurations of the
usage log, interleaved in rounds to cancel drift:

- ``write-ahead`` (the default): the record is durable once written to the write-ahead segment;
  the reply does not wait for the database;
- ``commit-wait`` (``write_ahead=False``, how the log worked before): the reply waits for its
  batch's commit.

Two figures per configuration: the request path (each request timed alone, yielding to the loop
in between as a server does, so the writer commits between requests: the commit is not in the
write-ahead timings, it is in the commit-wait ones), and amortized (a whole run plus the final
commit, divided by the requests: the CPU each record really costs, database included). The
usage store is a SQLite file (the default), the counters in-process.

Run: ``python -m bench.costs [--requests 20000] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from time import perf_counter_ns

import uvloop
from rich.console import Console

from bench.harness.report import microseconds_table
from bench.harness.results import request_path_us
from bench.telemetry import HEADERS, CannedTransport, read_body
from sidecar.config import settings_from_dict
from sidecar.exchange import Exchange
from sidecar.pipeline import build_pipeline
from sidecar.pipeline.costs import Costs
from sidecar.runtime import Overrides, Runtime
from sidecar.telemetry.setup import OtelProviders
from sidecar.usage_log import UsageLog

MODES = ("write-ahead", "commit-wait")


async def open_runtime(directory: Path) -> Runtime:
    settings = settings_from_dict(
        {
            "providers": {"sim": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None}},
            "database_url": f"sqlite:///{directory}/usage.db",
            "operations": {"chat": {"rate_limit": None}},
            "budgets": {"monthly_usd": 1_000_000},  # reserved and settled, never exhausted
        }
    )
    overrides = Overrides(transport=CannedTransport(), otel=OtelProviders(otlp=False))
    return await Runtime.open(settings, overrides)


async def answered_exchange(rt: Runtime) -> Exchange:
    """An exchange as the cost stage sees it after the call: model, usage, provider."""
    ex = Exchange("req", "POST", "chat/completions", "", HEADERS, read_body)
    reply = await build_pipeline(rt).handle(ex)
    await reply.aclose()
    if reply.status != 200 or ex.usage is None:
        raise RuntimeError(f"the pipeline answered {reply.status}: {reply.body[:200]!r}")
    return ex


async def stage_for(rt: Runtime, directory: Path, mode: str) -> Costs:
    costs = Costs(rt)
    costs.log = UsageLog(
        rt.usage_log.store, directory / f"{mode}.pending.jsonl", write_ahead=mode == MODES[0]
    )
    await costs.log.start()
    return costs


async def time_requests(costs: Costs, ex: Exchange, count: int) -> list[int]:
    timings = []
    for _ in range(count):
        started = perf_counter_ns()
        charge = await costs.reserve(ex)
        await costs.settle(ex, charge, outcome="success")
        timings.append(perf_counter_ns() - started)
        await asyncio.sleep(0)  # a server's loop runs the writer between requests
    return timings


async def amortized_us(costs: Costs, ex: Exchange, count: int) -> float:
    """Microseconds per request for a whole run, the commits of its records included."""
    await costs.log.flush()
    started = perf_counter_ns()
    for _ in range(count):
        charge = await costs.reserve(ex)
        await costs.settle(ex, charge, outcome="success")
        await asyncio.sleep(0)
    await costs.log.flush()
    return (perf_counter_ns() - started) / count / 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("bench/results/costs.json"))
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="sidecar-bench-costs-"))
    rt = await open_runtime(directory)
    try:
        ex = await answered_exchange(rt)
        stages = {mode: await stage_for(rt, directory, mode) for mode in MODES}
        for stage in stages.values():
            await time_requests(stage, ex, 500)  # warm-up
        timings: dict[str, list[int]] = {mode: [] for mode in MODES}
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for mode in MODES:
                timings[mode] += await time_requests(stages[mode], ex, per_round)
        count = args.requests // 4
        amortized = {mode: await amortized_us(stages[mode], ex, count) for mode in MODES}
        for stage in stages.values():
            await stage.log.close()
    finally:
        await rt.close()
    result = request_path_us(timings, base=MODES[0])
    for mode, value in amortized.items():
        result[mode]["amortized_us"] = round(value, 1)
    columns = {"p50": "p50_us", "p95": "p95_us", "p99": "p99_us", "amortized": "amortized_us"}
    Console().print(
        microseconds_table(
            "Cost stage per request (reserve + settle), in-process (µs; amortized incl. commits)",
            "usage log",
            result,
            columns,
        )
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    uvloop.run(main())
