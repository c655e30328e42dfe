"""How much latency and throughput does the sidecar cost? An open-loop overhead benchmark.

Run it as a module from the repository root (about 2.5 minutes; ``--quick`` is a < 30 s smoke
run)::

    .venv/bin/python -m bench.overhead                  # full run
    .venv/bin/python -m bench.overhead --quick          # smoke run
    .venv/bin/python -m bench.overhead --rates 100,500 --duration 5 --sequential 1000

It starts two subprocesses on free 127.0.0.1 ports, ``python -m sidecar mock-upstream`` (the
simulated OpenAI upstream, zero latency, 5 ms between SSE chunks) and ``python -m sidecar serve``
pointing at it (generated config in a temp dir: rate limit and cache off for ``chat``, in-memory
SQLite), waits until both answer, and drives them from this process with one keep-alive aiohttp
session on uvloop. "direct" requests go to the simulator, "proxied" ones through the sidecar; the
same small chat-completion body (``max_tokens: 16``) is sent to both and every body is read whole.
The servers are killed at the end. All times are milliseconds; percentiles come from numpy.

Figures:

1. Sequential added latency: one request at a time, direct and proxied interleaved (ABBA order)
   after a warm-up. ``added pXX = pXX(proxied) - pXX(direct)``: what one request pays for the
   extra hop on an idle machine. ``sidecar self-reported`` is the median of the sidecar's own
   ``X-Sidecar-Overhead-Ms`` header (time inside the sidecar minus upstream wait; it excludes the
   kernel and the client-side half of the extra hop, so it is lower than the added p50).
   ``sidecar CPU per proxied request``: the sidecar process's CPU time (user + system, from
   /proc) divided by the proxied requests: its cost free of scheduling noise.
2. Open-loop fixed rates: requests launched on a fixed schedule whatever the completions, so a
   slow server cannot slow the generator down (no coordinated omission); latency counts from the
   *scheduled* start, after 1 s of unmeasured warm-up at the same rate. Per rate and target:
   achieved RPS (successes / time to the last completion), errors (non-200, transport errors,
   requests unfinished after the drain), p50/p95/p99, ``gen lag p99`` (how late the generator
   launched requests; when it is large the machine, not the sidecar, is the limit), for proxied
   the added p50/p95/p99, and each server's CPU time per request (µs; it includes idle wake-ups,
   so it reads high at low rates). A run stops early and is marked saturated when errors exceed
   5 % or the p50 exceeds 2 s; it is also marked saturated when it achieved less than 95 % of the
   offered rate (falling behind).
3. Max throughput: closed loop, fixed concurrency (64), requests/s direct vs proxied after a
   short warm-up, with each server's CPU time per request; ``proxied / direct`` is the share of
   the bare upstream rate that survives the proxy on this machine (the generator, the sidecar and
   the simulator share its cores).
4. Streaming time to first chunk: sequential ``stream: true`` requests, interleaved; TTFC is the
   time from sending to the first body bytes (the first SSE event), ``total`` until the end of
   the stream. Added TTFC is what the sidecar delays the first token. The sidecar's CPU time per
   proxied stream is shown as well.

Between runs the benchmark waits until both servers are idle again (CPU time from /proc), so a
backlog left by one run does not spill into the next.

A last table reports how much CPU other processes and VM steal took during each section (from
/proc/stat): above 0.1 core, rerun on a quiet machine.

The whole result is also written as JSON (``--json``, default ``bench/results/overhead.json``),
with the team's targets (sequential added p50 <= 0.5 ms, added p99 at 500 RPS <= 5 ms, added
TTFC p50 <= 1 ms) checked at the end.

This module holds the plan, the run and the command line; the parts are in ``bench/harness``:
``servers`` (the subprocesses), ``load`` (requests, sequential, streaming and closed-loop
drivers), ``open_loop``, ``meters`` (CPU from /proc), ``results`` (the figures, which are also the
JSON schema) and ``report`` (the tables and the target checks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.admission import clean_redis
from bench.harness.load import (
    CHAT,
    Targets,
    make_session,
    rotate_users,
    sequential,
    streaming,
    throughput,
)
from bench.harness.meters import MachineMeter, settle
from bench.harness.open_loop import open_loop
from bench.harness.report import (
    check_targets,
    err,
    machine_table,
    open_loop_table,
    out,
    sequential_table,
    streaming_table,
    targets_table,
    throughput_table,
)
from bench.harness.results import MachineLoad
from bench.harness.servers import (
    REPO_ROOT,
    Server,
    redis_prefix,
    sidecar_config,
    simulator_and_sidecar,
    wait_ready,
)

if sys.platform != "win32":
    import uvloop

DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "overhead.json"


# --- the run -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    sequential: int
    warmup: int
    rates: list[float]
    duration_s: float
    concurrency: int
    throughput_s: float
    streams: int
    chunk_delay_ms: float
    upstream_latency_ms: float
    budget_s: float  # per one-at-a-time section (sequential, streaming)
    json_path: Path
    limits: str | None = None  # rate limit + cache on: "memory" or a Redis URL
    extra: dict[str, Any] = field(default_factory=dict)


async def run_sections(
    session: aiohttp.ClientSession, targets: Targets, plan: Plan
) -> dict[str, Any]:
    """The four sections in order, from idle servers; each table is printed once measured."""
    load: dict[str, MachineLoad | None] = {}

    @contextlib.contextmanager
    def section(name: str, heading: str) -> Iterator[None]:
        """Note how much CPU everything else took while the section ran."""
        err.print(heading)
        meter = MachineMeter(targets.pids)
        yield
        load[name] = meter.result()

    await settle(targets.pids)
    with section("sequential", f"[bold]1.[/bold] sequential: {plan.sequential} per target"):
        seq = await sequential(session, targets, plan.sequential, plan.warmup, plan.budget_s)
    out.print(sequential_table(seq))
    await settle(targets.pids)
    with section("open_loop", "[bold]2.[/bold] open loop"):
        pairs = await open_loop(session, targets, plan.rates, plan.duration_s)
    out.print(open_loop_table(pairs, plan.duration_s))
    # No settle here: the open loop has settled after its last run.
    with section("throughput", "[bold]3.[/bold] max throughput"):
        tput = await throughput(session, targets, plan.concurrency, plan.throughput_s)
    out.print(throughput_table(tput))
    await settle(targets.pids)
    with section("streaming", f"[bold]4.[/bold] streaming: {plan.streams} per target"):
        stream = await streaming(session, targets, plan.streams, plan.chunk_delay_ms, plan.budget_s)
    out.print(streaming_table(stream))
    checks = check_targets(seq, pairs, stream)
    out.print(targets_table(checks))
    out.print(machine_table(load))
    return {
        "sequential": asdict(seq),
        "open_loop": [asdict(p) for p in pairs],
        "throughput": asdict(tput),
        "streaming": asdict(stream),
        "targets": [asdict(c) for c in checks],
        "machine_load": {k: None if v is None else asdict(v) for k, v in load.items()},
    }


def source_digest() -> str:
    """SHA-256 of the sidecar package's sources: ties a result to the code that produced it."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "sidecar").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def metadata(plan: Plan, sim: Server, sidecar: Server) -> dict[str, Any]:
    plan_dict = {k: v for k, v in asdict(plan).items() if k not in ("json_path", "extra")}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "aiohttp": aiohttp.__version__,
        "event_loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "plan": plan_dict,
        "sidecar_source_sha256": source_digest(),
        "sidecar_config": sidecar_config(sim.port, plan.limits),
        "otel_env": sorted(k for k in os.environ if k.startswith("OTEL_")),
        "request_body": CHAT,
        "pids": {"simulator": sim.proc.pid, "sidecar": sidecar.proc.pid},
        **plan.extra,
    }


def _cancel_on_sigterm() -> None:
    """SIGTERM cancels the run like Ctrl-C does, so the servers are still stopped."""
    task = asyncio.current_task()
    if task is not None and sys.platform != "win32":
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def bench(plan: Plan) -> dict[str, Any]:
    _cancel_on_sigterm()
    if plan.limits is not None:
        rotate_users()
    with simulator_and_sidecar(plan.upstream_latency_ms, plan.chunk_delay_ms, plan.limits) as (
        sim,
        sidecar,
    ):
        async with make_session() as session:
            await wait_ready(session, sim)
            await wait_ready(session, sidecar)
            err.print(
                f"simulator pid {sim.proc.pid} :{sim.port}, sidecar pid {sidecar.proc.pid} "
                f":{sidecar.port}"
            )
            path = "/v1/chat/completions"
            processes = (("simulator", sim.proc.pid), ("sidecar", sidecar.proc.pid))
            targets = Targets(sim.base + path, sidecar.base + path, processes)
            meta: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            started = time.perf_counter()
            try:
                sections = await run_sections(session, targets, plan)
            finally:
                if plan.limits is not None and plan.limits != "memory":
                    await clean_redis(plan.limits, redis_prefix())  # the keys the sidecar wrote
            meta["elapsed_s"] = round(time.perf_counter() - started, 1)
            return {"meta": {**meta, **metadata(plan, sim, sidecar)}, **sections}


# --- command line ------------------------------------------------------------------------------


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Added latency and throughput cost of llm-sidecar against a simulated upstream."
    )
    parser.add_argument("--quick", action="store_true", help="smoke run, under 30 s")
    parser.add_argument(
        "--rates", type=_rates, help="open-loop RPS list (default 100,250,500,1000)"
    )
    parser.add_argument("--duration", type=float, help="seconds per open-loop run (default 10)")
    parser.add_argument("--sequential", type=int, metavar="N", help="sequential requests (2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="closed-loop concurrency")
    parser.add_argument("--throughput-duration", type=float, help="seconds per closed-loop run (5)")
    parser.add_argument("--streams", type=int, help="streaming requests per target (300)")
    parser.add_argument("--chunk-delay-ms", type=float, default=5.0, help="simulator SSE gap")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0, help="simulator latency")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument(
        "--limits",
        metavar="memory|REDIS_URL",
        help="turn on chat's rate limit and response cache (in process, or in this Redis); "
        "each request then comes from a new user, so nothing is refused and every lookup misses",
    )
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)

    def pick(value: Any, full: Any, smoke: Any) -> Any:
        return value if value is not None else (smoke if quick else full)

    return Plan(
        sequential=pick(args.sequential, 2000, 300),
        warmup=50 if quick else 200,
        rates=pick(args.rates, [100.0, 250.0, 500.0, 1000.0], [100.0, 500.0]),
        duration_s=pick(args.duration, 10.0, 2.0),
        concurrency=args.concurrency,
        throughput_s=pick(args.throughput_duration, 5.0, 1.5),
        streams=pick(args.streams, 300, 40),
        chunk_delay_ms=args.chunk_delay_ms,
        upstream_latency_ms=args.upstream_latency_ms,
        budget_s=30.0 if quick else 180.0,
        json_path=args.json,
        limits=args.limits,
        extra={"quick": quick},
    )


def run(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    if sys.platform == "win32":
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    plan = make_plan(parse_args(argv))
    try:
        result = run(bench(plan))
    except RuntimeError as exc:  # a server that would not start: its log tail is in the message
        err.print("[red]benchmark aborted:[/red]")
        err.print(str(exc), markup=False, highlight=False)
        return 1
    except (asyncio.CancelledError, KeyboardInterrupt):
        err.print("interrupted; servers stopped, no results written")
        return 130
    plan.json_path.parent.mkdir(parents=True, exist_ok=True)
    plan.json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    err.print(f"results written to {plan.json_path} ({result['meta']['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
