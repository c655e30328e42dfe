"""What shipping every span over OTLP costs the request path: export off vs on, in one run.

Run it as a module from the repository root (about a minute with the defaults)::

    .venv/bin/python -m bench.export
    .venv/bin/python -m bench.export --duration 5 --rounds 1 --throughput-duration 2   # smoke

It starts, on free 127.0.0.1 ports: the simulated upstream (``python -m sidecar mock-upstream``),
a minimal OTLP/HTTP sink (this module's ``sink`` command: an aiohttp app that decodes every
``ExportTraceServiceRequest`` and counts its spans), and two sidecars in front of the simulator
with the same generated config (rate limit and cache off), which differ only in the environment:
``off`` has no ``OTEL_EXPORTER_OTLP_*`` variable, ``on`` has ``OTEL_EXPORTER_OTLP_ENDPOINT``
pointing at the sink (``http/protobuf``; every other ``OTEL_*`` variable of this shell is passed
to both). The sidecars run through this module's ``serve`` command: the real ``llm-sidecar
serve`` plus an event-loop lag probe (an asyncio task that sleeps 5 ms and records how late it
wakes up) readable at ``GET /bench/lag``.

Placement, as in the issue: both sidecars (and whatever processes they start, such as an export
process) are pinned to CPU 0; the simulator, the sink and this load generator to CPU 1
(``--no-pin`` turns that off; on a machine with one CPU nothing is pinned).
``--export-elsewhere`` sets ``SIDECAR_EXPORT_CPUS`` so the ``on`` sidecar's export process runs
on CPU 1 instead (its CPU is still counted as the sidecar's). ``--control`` starts the ``on``
sidecar without export too (an A/A run): its "added" figures are what the machine's noise
alone reads as, the yardstick for an A/B run's (span accounting is skipped).

Sections:

1. Open loop at ``--rate`` (500 RPS) for ``--duration`` s, ``--rounds`` times, off and on
   alternating (off, on, off, on...) so drift hits both; each run has 1 s of unmeasured warm-up
   (``bench.harness.open_loop``: no coordinated omission, latency counted from the scheduled
   start). Per mode, over all rounds: p50/p95/p99 (ms), added = on - off, the generator's lag,
   the sidecar's event-loop lag p99, CPU per request (µs, the sidecar and every process it
   started, from /proc), spans the sink received per second, spans lost (expected 2 per
   request - received) and what the sidecar counted as dropped over the same section (the
   increase of its ``sidecar_telemetry_dropped_total``): the two agree when every loss is
   counted.
2. Max throughput: closed loop at ``--concurrency`` (64) for ``--throughput-duration`` s per mode
   (``bench.harness.load.throughput_run``), with the same span accounting.

Targets (issue 14): added p99 <= 1 ms and added p95 <= 0.3 ms at 500 RPS, max throughput on >=
85 % of off, 0 spans lost at 500 RPS. The JSON result goes to ``--json``
(``bench/results/export.json``). The last table says how much CPU other processes took; above
0.1 core rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import uvloop
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from rich.table import Table

from bench.harness.load import Targets, make_session, throughput_run
from bench.harness.meters import MachineMeter, settle
from bench.harness.open_loop import OpenLoop
from bench.harness.report import err, machine_table, out
from bench.harness.results import Latency, MachineLoad, RateRun, ThroughputRun
from bench.harness.servers import (
    HOST,
    REPO_ROOT,
    Server,
    free_port,
    sidecar_config,
    start_simulator,
    wait_ready,
)
from sidecar import cli
from sidecar.config import load_settings
from sidecar.telemetry.export_process import EXPORT_CPUS_ENV
from sidecar.telemetry.setup import ExportWarnings

DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "export.json"
MODES = ("off", "on")
SPANS_PER_REQUEST = 2  # the server span and one client span (no retry, no fallback)
DRAIN_S = 15.0  # how long to wait for the last spans to reach the sink after a run
PROBE_EVERY_S = 0.005
PROTOBUF = "application/x-protobuf"
DROPPED_METRIC = "sidecar_telemetry_dropped_total"

# --- the OTLP sink -------------------------------------------------------------------------------


class Sink:
    """Counts what arrives; ``--delay-ms`` answers late, like a slow collector."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.spans = 0
        self.trace_requests = 0
        self.metric_requests = 0
        self.bytes = 0

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        message = ExportTraceServiceRequest.FromString(body)
        self.spans += sum(
            len(scope.spans)
            for resource in message.resource_spans
            for scope in resource.scope_spans
        )
        self.trace_requests += 1
        self.bytes += len(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type=PROTOBUF)

    async def metrics(self, request: web.Request) -> web.Response:
        self.bytes += len(await request.read())
        self.metric_requests += 1
        body = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=body, content_type=PROTOBUF)

    async def counts(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "spans": self.spans,
                "trace_requests": self.trace_requests,
                "metric_requests": self.metric_requests,
                "bytes": self.bytes,
            }
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self.traces)
        app.router.add_post("/v1/metrics", self.metrics)
        app.router.add_get("/counts", self.counts)
        return app


def run_sink(port: int, delay_ms: float) -> int:
    web.run_app(
        Sink(delay_ms / 1000).app(), host=HOST, port=port, print=None, access_log=None
    )  # SIGTERM ends it
    return 0


# --- the sidecar, with an event-loop lag probe ---------------------------------------------------


class LagProbe:
    """How late the event loop runs a task that sleeps ``PROBE_EVERY_S``: its stalls, in ms."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            expected = time.perf_counter() + PROBE_EVERY_S
            await asyncio.sleep(PROBE_EVERY_S)
            if len(self.lags) < 1_000_000:
                self.lags.append(max(0.0, time.perf_counter() - expected) * 1000)

    async def handler(self, request: web.Request) -> web.Response:
        """The lags since the last reset (``?reset=1`` starts a new window)."""
        lags, stats = self.lags, {}
        if lags:
            p50, p99 = np.percentile(lags, [50, 99])
            stats = {"samples": len(lags), "p50": round(float(p50), 3), "p99": round(float(p99), 3),
                     "max": round(max(lags), 3)}  # fmt: skip
        if request.query.get("reset"):
            self.lags = []
        return web.json_response(stats)


def run_probed_sidecar(config: str, port: int, probe_port: int) -> int:
    """``llm-sidecar serve`` (its logging, its ``serve``), with the probe on the same event loop
    and its answers on ``probe_port``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(ExportWarnings())
    settings = load_settings(config)

    async def main() -> int:
        probe = LagProbe()
        task = asyncio.get_running_loop().create_task(probe.run())
        app = web.Application()
        app.router.add_get("/lag", probe.handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, probe_port).start()
        try:
            return await cli.serve(settings, HOST, port)
        finally:
            task.cancel()
            await runner.cleanup()

    return uvloop.run(main())


# --- processes -----------------------------------------------------------------------------------


def _cpus() -> tuple[set[int], set[int]] | None:
    """(CPUs for the sidecars, CPUs for everything else), or None when not pinning."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


def _pin(pid: int, cpus: set[int] | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


def _spawn(
    name: str, args: list[str], *, port: int, probe: str, workdir: Path, env: dict[str, str]
) -> Server:
    log_path = workdir / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.export", *args],
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Server(name, port, probe, proc, log_path, log)


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_OTLP")}


def sidecar_env(mode: str, sink_port: int, export_cpus: set[int] | None = None) -> dict[str, str]:
    env = _base_env()
    if mode == "on":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{HOST}:{sink_port}"
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        if export_cpus:
            env[EXPORT_CPUS_ENV] = ",".join(map(str, sorted(export_cpus)))
    return env


def descendants(pid: int) -> list[int]:
    """Every process started by ``pid`` (an export process, say), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text(encoding="ascii")
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass(slots=True)
class Stack:
    simulator: Server
    sink: Server
    sidecars: dict[str, Server]
    probes: dict[str, str]  # each sidecar's lag probe URL

    def processes(self, mode: str) -> tuple[tuple[str, int], ...]:
        """The sidecar and every process it started: each one's CPU counts."""
        pid = self.sidecars[mode].proc.pid
        return (("sidecar", pid), *((f"child {c}", c) for c in descendants(pid)))

    @property
    def pids(self) -> tuple[int, ...]:
        servers = (self.simulator, self.sink, *self.sidecars.values())
        pids = [server.proc.pid for server in servers]
        for server in self.sidecars.values():
            pids += descendants(server.proc.pid)
        return tuple(pids)


@contextlib.contextmanager
def started(
    pin: bool, sink_delay_ms: float, export_elsewhere: bool = False, control: bool = False
) -> Iterator[Stack]:
    cpus = _cpus() if pin else None
    sidecar_cpus, other_cpus = cpus if cpus is not None else (None, None)
    export_cpus = other_cpus if export_elsewhere else None
    _pin(os.getpid(), other_cpus)
    with (
        tempfile.TemporaryDirectory(prefix="sidecar-bench-export-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        sim = start_simulator(workdir, 0.0, 5.0)
        stack.callback(sim.stop)
        _pin(sim.proc.pid, other_cpus)
        sink_port = free_port()
        sink_args = ["sink", "--port", str(sink_port), "--delay-ms", str(sink_delay_ms)]
        sink = _spawn(
            "sink", sink_args, port=sink_port, probe="/counts", workdir=workdir, env=_base_env()
        )
        stack.callback(sink.stop)
        _pin(sink.proc.pid, other_cpus)
        sidecars, probes = {}, {}
        for mode in MODES:
            (workdir / mode).mkdir()
            config = workdir / mode / "sidecar.yaml"
            text = json.dumps(sidecar_config(sim.port, None, workdir / mode), indent=2)
            config.write_text(text, encoding="utf-8")
            port, probe_port = free_port(), free_port()
            args = ["serve", "--config", str(config), "--port", str(port)]
            args += ["--probe-port", str(probe_port)]
            env = sidecar_env("off" if control else mode, sink_port, export_cpus)
            sidecars[mode] = _spawn(
                f"sidecar-{mode}", args, port=port, probe="/healthz", workdir=workdir, env=env
            )
            stack.callback(sidecars[mode].stop)
            _pin(sidecars[mode].proc.pid, sidecar_cpus)
            probes[mode] = f"http://{HOST}:{probe_port}/lag"
        yield Stack(sim, sink, sidecars, probes)


# --- measuring -----------------------------------------------------------------------------------


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def dropped_metric(session: aiohttp.ClientSession, server: Server) -> float | None:
    """The sidecar's own count of spans it dropped, from /metrics (None: it has no such metric)."""
    async with session.get(server.base + "/metrics") as response:
        text = await response.text()
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(DROPPED_METRIC)
    ]
    return sum(values) if values else None


async def sink_spans(session: aiohttp.ClientSession, stack: Stack) -> int:
    counts = await get_json(session, stack.sink.base + "/counts")
    return int(counts["spans"])


async def accounted(
    session: aiohttp.ClientSession, stack: Stack, received: int, dropped: float, expected: int
) -> tuple[int, float]:
    """Spans the sink got and the sidecar counted as dropped since (``received``, ``dropped``),
    once together they reach ``expected``, or stop growing for 3 s, or DRAIN_S passes. Both
    are read again on every poll: the export process, starved while the load ran, reads what
    is left in its pipe afterwards, and only then exports or drops (and counts) it."""
    deadline = time.perf_counter() + DRAIN_S
    last, since = (-1, -1.0), time.perf_counter()
    while True:
        now_dropped = await dropped_metric(session, stack.sidecars["on"]) or 0.0
        counts = (await sink_spans(session, stack) - received, now_dropped - dropped)
        if sum(counts) >= expected:
            return counts
        now = time.perf_counter()
        if counts != last:
            last, since = counts, now
        if now - since > 3.0 or now > deadline:
            return counts
        await asyncio.sleep(0.2)


@dataclass(slots=True)
class Spans:
    """Span accounting for the export-on sidecar over one section."""

    expected: int = 0  # SPANS_PER_REQUEST per request the sidecar handled
    received: int = 0  # by the sink
    dropped_metric: float | None = None  # what the sidecar itself counted as dropped
    seconds: float = 0.0  # of measured load

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def per_s(self) -> float | None:
        return round(self.received / self.seconds, 1) if self.seconds else None


@dataclass(slots=True)
class ModeResult:
    mode: str
    latency_ms: Latency
    runs: list[RateRun]
    loop_lag_p99_ms: float | None
    loop_lag_max_ms: float | None
    throughput: list[ThroughputRun] = field(default_factory=list)
    spans_open_loop: Spans = field(default_factory=Spans)
    spans_throughput: Spans = field(default_factory=Spans)


class Bench:
    def __init__(self, session: aiohttp.ClientSession, stack: Stack, args: argparse.Namespace):
        self.session, self.stack, self.args = session, stack, args
        self.latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
        self.runs: dict[str, list[RateRun]] = {mode: [] for mode in MODES}
        self.lags: dict[str, list[float]] = {mode: [] for mode in MODES}
        self.spans = {"open_loop": Spans(), "throughput": Spans()}
        self.throughput: dict[str, list[ThroughputRun]] = {mode: [] for mode in MODES}

    def url(self, mode: str) -> str:
        return self.stack.sidecars[mode].base + "/v1/chat/completions"

    async def lag(self, mode: str, *, reset: bool) -> dict[str, float]:
        url = self.stack.probes[mode] + ("?reset=1" if reset else "")
        result: dict[str, float] = await get_json(self.session, url)
        return result

    async def handled(self) -> int:
        """Requests the export-on sidecar has answered so far (``sidecar_requests_total``)."""
        async with self.session.get(self.stack.sidecars["on"].base + "/metrics") as response:
            text = await response.text()
        prefix = "sidecar_requests_total{"
        return int(sum(float(line.rsplit(" ", 1)[1])
                       for line in text.splitlines() if line.startswith(prefix)))  # fmt: skip

    @contextlib.asynccontextmanager
    async def counting(self, section: str, mode: str, seconds: float) -> AsyncIterator[None]:
        """Span accounting around one export-on run: every request it answered (warm-up
        included) owes the sink SPANS_PER_REQUEST spans."""
        if mode != "on" or self.args.control:
            yield
            return
        handled, received = await self.handled(), await sink_spans(self.session, self.stack)
        dropped = await dropped_metric(self.session, self.stack.sidecars["on"])
        yield
        spans = self.spans[section]
        expected = (await self.handled() - handled) * SPANS_PER_REQUEST
        got, lost = await accounted(self.session, self.stack, received, dropped or 0.0, expected)
        spans.expected += expected
        spans.received += got
        if dropped is not None:
            spans.dropped_metric = (spans.dropped_metric or 0.0) + lost
        spans.seconds += seconds

    async def open_loop(self, mode: str) -> None:
        err.print(f"  open loop {self.args.rate:g} RPS, export {mode}, {self.args.duration:g} s")
        await self.lag(mode, reset=True)
        loop = OpenLoop(self.session, self.url(mode), self.args.rate)
        async with self.counting("open_loop", mode, self.args.duration):
            run = await loop.run(mode, self.args.duration, self.stack.processes(mode))
            lag = await self.lag(mode, reset=True)
        self.latencies[mode] += loop.latencies
        self.runs[mode].append(run)
        if lag:
            self.lags[mode].append(lag["p99"])
        await settle(self.stack.pids)

    async def max_throughput(self, mode: str) -> None:
        err.print(f"  closed loop, concurrency {self.args.concurrency}, export {mode}")
        targets = Targets(self.url(mode), self.url(mode), self.stack.processes(mode))
        duration, concurrency = self.args.throughput_duration, self.args.concurrency
        async with self.counting("throughput", mode, duration):
            run = await throughput_run(self.session, targets, "direct", concurrency, duration)
        self.throughput[mode].append(run)
        await settle(self.stack.pids)

    def results(self) -> dict[str, ModeResult]:
        results = {}
        for mode in MODES:
            lags = self.lags[mode]
            results[mode] = ModeResult(
                mode=mode,
                latency_ms=Latency.of(self.latencies[mode]),
                runs=self.runs[mode],
                loop_lag_p99_ms=round(float(np.mean(lags)), 3) if lags else None,
                loop_lag_max_ms=max(lags) if lags else None,
                throughput=self.throughput[mode],
                spans_open_loop=self.spans["open_loop"] if mode == "on" else Spans(),
                spans_throughput=self.spans["throughput"] if mode == "on" else Spans(),
            )
        return results


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    load: dict[str, MachineLoad | None] = {}
    with started(not args.no_pin, args.sink_delay_ms, args.export_elsewhere, args.control) as stack:
        async with make_session() as session:
            for server in (stack.simulator, stack.sink, *stack.sidecars.values()):
                await wait_ready(session, server)
            err.print(
                f"simulator pid {stack.simulator.proc.pid}, sink pid {stack.sink.proc.pid}, "
                + ", ".join(f"sidecar {m} pid {s.proc.pid}" for m, s in stack.sidecars.items())
                + f"; load average {os.getloadavg()[0]:.2f}"
            )
            b = Bench(session, stack, args)
            meter = MachineMeter(stack.pids)
            for _ in range(args.rounds):
                for mode in MODES:
                    await b.open_loop(mode)
            load["open_loop"] = meter.result()
            meter = MachineMeter(stack.pids)
            for _ in range(args.rounds):
                for mode in MODES:
                    await b.max_throughput(mode)
            load["throughput"] = meter.result()
            results = b.results()
    show(results, args)
    out.print(machine_table(load))
    return {
        "meta": {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "load_average_1m": os.getloadavg()[0],
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "otel_env": sorted(k for k in os.environ if k.startswith("OTEL_")),
        },
        "modes": {mode: asdict(result) for mode, result in results.items()},
        "spans": {
            section: {**asdict(spans), "lost": spans.lost, "per_s": spans.per_s}
            for section, spans in b.spans.items()
        },
        "machine_load": {k: None if v is None else asdict(v) for k, v in load.items()},
        "targets": targets(results, control=args.control),
    }


# --- report --------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _cpu(runs: Sequence[RateRun | ThroughputRun]) -> float | None:
    """CPU µs per request of the sidecar and its children, averaged over runs."""
    totals = [sum(run.cpu_us_per_request.values()) for run in runs if run.cpu_us_per_request]
    return round(float(np.mean(totals)), 1) if totals else None


def _rps(runs: Sequence[ThroughputRun]) -> float:
    """Mean requests/s over the rounds."""
    return float(np.mean([run.rps for run in runs])) if runs else 0.0


def targets(results: dict[str, ModeResult], *, control: bool = False) -> list[dict[str, Any]]:
    off, on = results["off"], results["on"]
    ratio = None
    if off.throughput and on.throughput and _rps(off.throughput):
        ratio = round(_rps(on.throughput) / _rps(off.throughput), 3)
    added = {
        p: _minus(getattr(on.latency_ms, p), getattr(off.latency_ms, p)) for p in ("p95", "p99")
    }
    checks = [
        ("added p99 at the open-loop rate (ms)", 1.0, added["p99"]),
        ("added p95 at the open-loop rate (ms)", 0.3, added["p95"]),
        ("max throughput on / off (>=)", 0.85, ratio),
        ("spans lost at the open-loop rate", 0, None if control else on.spans_open_loop.lost),
    ]
    result = []
    for name, limit, value in checks:
        met = None if value is None else (value >= limit if "(>=)" in name else value <= limit)
        result.append({"figure": name, "target": limit, "measured": value, "met": met})
    return result


def _label(mode: str, args: argparse.Namespace) -> str:
    """A row's name: in an A/A run the second sidecar does not export either."""
    return "off (B)" if args.control and mode == "on" else mode


def show(results: dict[str, ModeResult], args: argparse.Namespace) -> None:
    off, on = results["off"], results["on"]
    title = f"1. Open loop {args.rate:g} RPS, {args.rounds} x {args.duration:g} s per mode"
    table = Table(title=title)
    for col in ("export", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "gen lag p99",
                "loop lag p99", "CPU µs/req", "spans/s", "lost", "dropped (metric)"):  # fmt: skip
        table.add_column(col, justify="left" if col == "export" else "right")
    for result in (off, on):
        lat, spans = result.latency_ms, result.spans_open_loop
        lags = [run.gen_lag_p99_ms for run in result.runs if run.gen_lag_p99_ms is not None]
        table.add_row(
            _label(result.mode, args), _f(lat.p50), _f(lat.p95), _f(lat.p99), _f(lat.max),
            str(sum(run.errors for run in result.runs)),
            _f(max(lags) if lags else None), _f(result.loop_lag_p99_ms), _f(_cpu(result.runs), 0),
            _f(spans.per_s, 0) if result.mode == "on" else "",
            str(spans.lost) if result.mode == "on" else "",
            _f(spans.dropped_metric, 0) if result.mode == "on" else "",
        )  # fmt: skip
    table.add_row(
        "[bold]added[/bold]",
        *(f"[bold]{_f(_minus(getattr(on.latency_ms, p), getattr(off.latency_ms, p)))}[/bold]"
          for p in ("p50", "p95", "p99", "max")),
        "", "", _f(_minus(on.loop_lag_p99_ms, off.loop_lag_p99_ms)),
        _f(_minus(_cpu(on.runs), _cpu(off.runs)), 0), "", "", "",
    )  # fmt: skip
    reasons = [f"{r.target}: {r.reason}" for r in (*off.runs, *on.runs) if r.saturated]
    if reasons:
        table.caption = "saturated runs (the figures are not the sidecar's): " + "; ".join(reasons)
    out.print(table)

    title = (
        f"2. Max throughput, closed loop, concurrency {args.concurrency}, "
        f"{args.rounds} x {args.throughput_duration:g} s per mode"
    )
    table = Table(title=title)
    for col in ("export", "requests/s", "each round", "p50 ms", "p99 ms", "CPU µs/req",
                "spans/s", "lost", "dropped (metric)"):  # fmt: skip
        table.add_column(col, justify="left" if col == "export" else "right")
    for result in (off, on):
        runs, spans = result.throughput, result.spans_throughput
        if not runs:
            continue
        p50 = float(np.mean([run.latency_ms.p50 or 0.0 for run in runs]))
        p99 = float(np.mean([run.latency_ms.p99 or 0.0 for run in runs]))
        table.add_row(
            _label(result.mode, args), f"{_rps(runs):.0f}",
            " / ".join(f"{run.rps:.0f}" for run in runs),
            _f(p50), _f(p99), _f(_cpu(runs), 0),
            _f(spans.per_s, 0) if result.mode == "on" else "",
            str(spans.lost) if result.mode == "on" else "",
            _f(spans.dropped_metric, 0) if result.mode == "on" else "",
        )  # fmt: skip
    out.print(table)

    table = Table(
        title="A/A control, neither sidecar exporting: the targets read against noise alone"
        if args.control
        else "Targets (issue 14)"
    )
    for col in ("figure", "target", "measured", "met"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    verdict = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "not measured"}
    for check in targets(results, control=args.control):
        table.add_row(check["figure"], str(check["target"]), str(check["measured"]),
                      verdict[check["met"]])  # fmt: skip
    out.print(table)


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="OTLP span export on vs off, one run.")
    sub = parser.add_subparsers(dest="command")
    sink = sub.add_parser("sink", help="run the OTLP/HTTP sink alone")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--delay-ms", type=float, default=0.0)
    serve = sub.add_parser("serve", help="llm-sidecar serve with an event-loop lag probe")
    serve.add_argument("--config", required=True)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--probe-port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per open-loop run")
    parser.add_argument("--rounds", type=int, default=2, help="open-loop runs per mode")
    parser.add_argument("--concurrency", type=int, default=64, help="closed-loop concurrency")
    parser.add_argument("--throughput-duration", type=float, default=5.0)
    parser.add_argument("--sink-delay-ms", type=float, default=0.0, help="a slow collector")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--export-elsewhere",
        action="store_true",
        help="put the export process on the other CPUs (SIDECAR_EXPORT_CPUS), not the sidecar's",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="A/A: start the 'on' sidecar without export too, to see what noise alone reads as",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "sink":
        return run_sink(args.port, args.delay_ms)
    if args.command == "serve":
        return run_probed_sidecar(args.config, args.port, args.probe_port)
    try:
        result = uvloop.run(bench(args))
    except RuntimeError as exc:  # a server that would not start: its log tail is in the message
        err.print("[red]benchmark aborted:[/red]")
        err.print(str(exc), markup=False, highlight=False)
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    err.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
