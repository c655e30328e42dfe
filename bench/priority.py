"""What priority admission costs per upstream attempt, in process.

The admission stage (:mod:`sidecar.pipeline.admission`) alone, in front of a terminal that
answers at once, against the same terminal called directly; configurations interleaved in
rounds. Figures per configuration: this process's CPU time per request over a run (the budget's
figure) and wall p50/p99 of single requests where they run one at a time.

- ``direct`` / ``admitted``: one request at a time, a whole-body reply: the fast path (a slot
  free, nobody waiting), taken and released around the call;
- ``direct stream`` / ``admitted stream``: the same with a streamed reply closed afterwards:
  the slot is released through ``Reply.release``;
- ``direct 16x`` / ``queued 16x``: 16 tasks calling at once, each call yielding to the loop once
  (so the calls overlap), through 4 slots: most requests queue, are woken by a released slot,
  and resume; the difference is the slow path, task switches included.

Run: ``python -m bench.priority [--requests 20000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from time import perf_counter_ns, process_time_ns

import numpy as np
import uvloop
from rich.console import Console
from rich.table import Table

from bench.telemetry import ANSWER, HEADERS, CannedTransport, read_body
from sidecar.admission import Gates
from sidecar.config import settings_from_dict
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline import Next, compose
from sidecar.pipeline.admission import Admission
from sidecar.runtime import Overrides, Runtime
from sidecar.telemetry.setup import OtelProviders

CONCURRENCY = 16
SLOTS = 4


async def answer(ex: Exchange) -> Reply:
    return Reply(200, body=ANSWER)


async def events() -> AsyncGenerator[bytes]:
    yield ANSWER


async def answer_stream(ex: Exchange) -> Reply:
    return Reply(200, stream=events())


class AnswerLater:
    """The upstream call "takes a while" (one loop turn), so concurrent calls overlap; notes
    the longest queue it saw."""

    def __init__(self, gates: Gates) -> None:
        self.gate = gates["narrow"]
        self.peak_waiting = 0

    async def __call__(self, ex: Exchange) -> Reply:
        self.peak_waiting = max(self.peak_waiting, self.gate.waiting)
        await asyncio.sleep(0)
        return Reply(200, body=ANSWER)


def exchange(provider: str) -> Exchange:
    ex = Exchange("req", "POST", "chat/completions", "", HEADERS, read_body)
    ex.provider_name = provider
    ex.user = "u1"
    return ex


async def runtime() -> Runtime:
    settings = settings_from_dict(
        {
            "providers": {
                "open": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None},
                "narrow": {
                    "base_url": "http://127.0.0.1:9/v1",
                    "api_key_env": None,
                    "max_concurrency": SLOTS,
                },
            },
            "telemetry": {"enabled": False},
            "database_url": f"sqlite:///{tempfile.mkdtemp(prefix='sidecar-bench-')}/usage.db",
        }
    )
    otel = OtelProviders(otlp=False)
    return await Runtime.open(settings, Overrides(transport=CannedTransport(), otel=otel))


Mode = tuple[Next, str, int]  # handler, provider, concurrent tasks


def modes(stage: Admission, answer_later: AnswerLater) -> dict[str, Mode]:
    def admitted(terminal: Next) -> Next:
        return compose([stage], terminal)

    return {
        "direct": (answer, "open", 1),
        "admitted": (admitted(answer), "open", 1),
        "direct stream": (answer_stream, "open", 1),
        "admitted stream": (admitted(answer_stream), "open", 1),
        f"direct {CONCURRENCY}x": (answer_later, "narrow", CONCURRENCY),
        f"queued {CONCURRENCY}x": (admitted(answer_later), "narrow", CONCURRENCY),
    }


async def one_at_a_time(handle: Next, provider: str, count: int) -> tuple[list[int], int]:
    """Wall time of each request, and the CPU time of the whole run (ns)."""
    timings = []
    cpu = process_time_ns()
    for _ in range(count):
        ex = exchange(provider)
        started = perf_counter_ns()
        reply = await handle(ex)
        await reply.aclose()
        timings.append(perf_counter_ns() - started)
    return timings, process_time_ns() - cpu


async def at_once(handle: Next, provider: str, count: int, tasks: int) -> int:
    """CPU time (ns) of ``count`` requests made by ``tasks`` concurrent callers."""

    async def caller(n: int) -> None:
        for _ in range(n):
            reply = await handle(exchange(provider))
            await reply.aclose()

    cpu = process_time_ns()
    await asyncio.gather(*(caller(count // tasks) for _ in range(tasks)))
    return process_time_ns() - cpu


async def run(rt: Runtime, mode: Mode, count: int) -> tuple[list[int], int]:
    """A run of one mode; its CPU time includes handing its metrics (queue waits) to the SDK."""
    handle, provider, tasks = mode
    if tasks == 1:
        timings, cpu = await one_at_a_time(handle, provider, count)
    else:
        timings, cpu = [], await at_once(handle, provider, count, tasks)
    started = process_time_ns()
    rt.telemetry.batch.flush()
    return timings, cpu + process_time_ns() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000, help="timed requests per mode")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench/results/priority.json"))
    args = parser.parse_args()
    rt = await runtime()
    stage = Admission(rt)
    answer_later = AnswerLater(stage.gates)
    plan = modes(stage, answer_later)
    try:
        for mode in plan.values():
            await run(rt, mode, 2000)  # warm-up
        timings: dict[str, list[int]] = {name: [] for name in plan}
        cpu: dict[str, int] = dict.fromkeys(plan, 0)
        per_round = max(CONCURRENCY, args.requests // args.rounds)
        for _ in range(args.rounds):
            for name, mode in plan.items():
                took, spent = await run(rt, mode, per_round)
                timings[name] += took
                cpu[name] += spent
        if stage.gates.in_flight or stage.gates.waiting or stage.gates["narrow"].shed:
            raise RuntimeError("a slot leaked, or a request was shed")
    finally:
        await rt.close()
    result = summarise(timings, cpu, per_round * args.rounds)
    show(result)
    print(f"queued {CONCURRENCY}x: up to {answer_later.peak_waiting} requests waited for a slot")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


def summarise(
    timings: dict[str, list[int]], cpu: dict[str, int], count: int
) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    names = list(timings)
    for direct, admitted in zip(names[::2], names[1::2], strict=True):
        for name in (direct, admitted):
            row = {"cpu_us": cpu[name] / count / 1000}
            if timings[name]:
                p50, p99 = np.percentile(np.array(timings[name]) / 1000, [50, 99])
                row |= {"p50_us": float(p50), "p99_us": float(p99)}
            row["added_cpu_us"] = row["cpu_us"] - cpu[direct] / count / 1000
            result[name] = {key: round(value, 2) for key, value in row.items()}
    return result


def show(result: dict[str, dict[str, float]]) -> None:
    table = Table(title="Priority admission per request, in process (µs)")
    for column in ("mode", "CPU", "added CPU", "wall p50", "wall p99"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for name, row in result.items():
        table.add_row(
            name,
            f"{row['cpu_us']:.2f}",
            f"{row['added_cpu_us']:+.2f}",
            f"{row['p50_us']:.2f}" if "p50_us" in row else "-",
            f"{row['p99_us']:.2f}" if "p99_us" in row else "-",
        )
    Console().print(table)


if __name__ == "__main__":
    uvloop.run(main())
