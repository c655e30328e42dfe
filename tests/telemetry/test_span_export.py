"""The span export process: every span once, OTEL_* honoured, failures cost requests nothing.

A real sidecar with a real OTLP/HTTP receiver (from ``test_export``), a dead endpoint, and a
:class:`SpanShipper` whose export process is stopped (SIGSTOP) to stand for one that cannot keep
up. Counts come from ``/metrics`` as an operator would read them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from sidecar.telemetry import names as n
from sidecar.telemetry.export_process import EXPORT_CPUS_ENV, Sender, parse_cpus
from sidecar.telemetry.otlp_wire import WireEncoder
from sidecar.telemetry.setup import OtelProviders, otlp_span_exporter
from sidecar.telemetry.shipping import Setup, SpanShipper
from sidecar.telemetry.spans import CompactTracer, SpanRecord
from tests.helpers import ServerFactory
from tests.telemetry.test_export import WAIT_S, HttpReceiver, create_sidecar, export_env

MODEL = "gpt-4o-mini"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
NO_LIMIT: dict[str, Any] = {"operations": {"chat": {"rate_limit": None}}}


class HeaderReceiver(HttpReceiver):
    """The test's OTLP/HTTP receiver, also keeping the headers of each trace export."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, str]] = []

    async def _traces(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        return await super()._traces(request)


class GatedReceiver(HttpReceiver):
    """A collector that holds every trace export until ``release``: a stuck collector."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    async def _traces(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.gate.wait, WAIT_S)
        return await super()._traces(request)


@pytest.fixture
def receiver() -> Iterator[HeaderReceiver]:
    started = HeaderReceiver()
    started.start()
    yield started
    started.stop()


async def export_counts(session: aiohttp.ClientSession, sidecar: TestServer) -> dict[str, float]:
    """``sidecar_telemetry_exported_total`` and ``..._dropped_total`` by reason, from /metrics."""
    async with session.get(sidecar.make_url("/metrics")) as response:
        text = await response.text()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sidecar_telemetry_exported_total":
                counts["exported"] = sample.value
            elif sample.name == "sidecar_telemetry_dropped_total":
                counts[sample.labels[n.LABEL_DROP_REASON.replace(".", "_")]] = sample.value
    return counts


async def post_many(session: aiohttp.ClientSession, sidecar: TestServer, count: int) -> list[int]:
    async def one() -> int:
        async with session.post(sidecar.make_url("/v1/chat/completions"), json=BODY) as response:
            await response.read()
            return response.status

    return list(await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), WAIT_S))


async def wait_for_counts(
    session: aiohttp.ClientSession, sidecar: TestServer, total: int
) -> dict[str, float]:
    """Poll /metrics (at most WAIT_S) until exported + dropped accounts for ``total`` spans."""
    async with asyncio.timeout(WAIT_S):
        while True:
            counts = await export_counts(session, sidecar)
            if sum(counts.values()) >= total:
                return counts
            await asyncio.sleep(0.05)


async def test_every_span_of_a_burst_reaches_the_collector_exactly_once(
    receiver: HeaderReceiver,
    upstream: TestServer,
    aiohttp_server: ServerFactory,
    provider_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """120 concurrent requests: 240 spans arrive, each once, a server and a client span per
    trace; OTEL_EXPORTER_OTLP_HEADERS reaches the collector; the counters agree; and closing
    the sidecar ends its export process."""
    export_env(
        monkeypatch, receiver.endpoint, "http/protobuf", OTEL_EXPORTER_OTLP_HEADERS="x-tenant=t-42"
    )
    providers = OtelProviders()
    assert providers.shipper is not None
    process = providers.shipper.process
    sidecar = await aiohttp_server(
        create_sidecar(str(upstream.make_url("/v1")), providers=providers, **NO_LIMIT)
    )
    async with aiohttp.ClientSession() as session:
        assert await post_many(session, sidecar, 120) == [200] * 120
        await receiver.received.wait_until(
            lambda: len(receiver.received.spans()) >= 240, "240 spans"
        )
        counts = await wait_for_counts(session, sidecar, 240)
    spans = receiver.received.spans()
    assert len(spans) == 240
    assert len({span.span_id for span in spans}) == 240
    by_trace: dict[str, list[int]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span.kind)
    assert len(by_trace) == 120
    assert all(
        sorted(kinds) == [SpanProto.SPAN_KIND_SERVER, SpanProto.SPAN_KIND_CLIENT]
        for kinds in by_trace.values()
    )
    assert counts == {"exported": 240, "queue": 0, "export": 0}
    assert receiver.headers
    assert all(headers.get("x-tenant") == "t-42" for headers in receiver.headers)
    await sidecar.close()
    assert process.poll() is not None


async def test_a_dead_collector_loses_spans_only_as_counted(
    aiohttp_server: ServerFactory,
    upstream: TestServer,
    provider_key: str,
    unused_tcp_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody listens at the endpoint: every request still succeeds, nothing is exported, and
    every one of the spans is counted as dropped (queue full or export failed)."""
    export_env(
        monkeypatch,
        f"http://127.0.0.1:{unused_tcp_port}",
        "http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_BSP_MAX_QUEUE_SIZE="16",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8",
        OTEL_METRICS_EXPORTER="none",  # only spans go to the dead endpoint
    )
    sidecar = await aiohttp_server(
        create_sidecar(str(upstream.make_url("/v1")), providers=OtelProviders(), **NO_LIMIT)
    )
    async with aiohttp.ClientSession() as session:
        assert await post_many(session, sidecar, 60) == [200] * 60
        counts = await wait_for_counts(session, sidecar, 120)
    assert counts["exported"] == 0
    assert counts["queue"] > 0  # 120 spans cannot all wait in a 16-span queue
    assert counts["queue"] + counts["export"] == 120
    await sidecar.close()


def record(index: int, padding: str) -> SpanRecord:
    """A finished span's record, ``padding`` making it as large as wanted."""
    return ("work", 0, index + 1, index + 1, 1, None, None, 1, 2, {"pad": padding}, 0,
            None, None, 0, None)  # fmt: skip


def test_an_export_process_that_cannot_keep_up_never_blocks_the_caller(
    unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the export process stopped, the pipe fills: adding spans still returns at once
    (the pipe is non-blocking; a blocking write would hang this test), and every span that did
    not fit is counted as dropped."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{unused_tcp_port}")
    shipper = SpanShipper(Setup({"service.name": "t"}, "", ("sidecar", "0", None)))
    os.kill(shipper.process.pid, signal.SIGSTOP)
    try:
        padding = "x" * 8192
        total = 1000  # ~8 MB, several times what the pipe holds
        for index in range(total):
            shipper.add(record(index, padding))  # no event loop here: each add is written
        shipper.flush()
        dropped = shipper.dropped
        assert 0 < dropped < total
        assert shipper.totals()[1] >= dropped  # the metric's "queue" reason includes them
    finally:
        os.kill(shipper.process.pid, signal.SIGCONT)
        shipper.shutdown(timeout_s=5.0)
    assert shipper.process.poll() is not None


def test_spans_the_shipper_would_drop_are_not_built_but_counted(
    unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the pipe refuses frames, a sampled span and its children are not recorded: each
    is counted as dropped, and the trace context still says sampled. Once the export process
    reads again, spans are recorded again."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{unused_tcp_port}")
    shipper = SpanShipper(Setup({"service.name": "t"}, "", ("sidecar", "0", None)))
    tracer = CompactTracer([shipper.add], DEFAULT_ON, backlog=shipper)
    os.kill(shipper.process.pid, signal.SIGSTOP)
    try:
        padding = "x" * 8192
        for index in range(1000):  # ~8 MB: the pipe holds 1 MB
            shipper.add(record(index, padding))
            if shipper.full():
                break
        assert shipper.full()
        dropped = shipper.dropped
        server = tracer.start_span("server", kind=SpanKind.SERVER)
        with trace.use_span(server, end_on_exit=True):
            client = tracer.start_span("client", kind=SpanKind.CLIENT)
            client.end()
        assert not server.is_recording()
        assert not client.is_recording()
        assert server.get_span_context().trace_flags.sampled
        assert client.get_span_context().trace_id == server.get_span_context().trace_id
        assert shipper.dropped == dropped + 2
    finally:
        os.kill(shipper.process.pid, signal.SIGCONT)
    try:
        deadline = time.monotonic() + WAIT_S
        while shipper.full() and time.monotonic() < deadline:
            shipper.flush()  # the export process drains the pipe: the rest of the frame goes
        assert not shipper.full()
        assert tracer.start_span("after").is_recording()
    finally:
        shipper.shutdown(timeout_s=5.0)


def test_a_stuck_collector_backs_up_into_the_sidecar_and_every_span_is_accounted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The collector holds its first export: the export process's queue fills, it stops
    reading, the pipe fills, and the sidecar drops (and counts) what is added meanwhile; the
    export process itself drops nothing. Once the collector answers, what was queued and piped
    is exported, and exported + dropped is every span added."""
    receiver = GatedReceiver()
    receiver.start()
    try:
        export_env(
            monkeypatch, receiver.endpoint, "http/protobuf",
            OTEL_BSP_MAX_QUEUE_SIZE="64", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="32",
        )  # fmt: skip
        shipper = SpanShipper(Setup({"service.name": "t"}, "", ("sidecar", "0", None)))
        padding, added = "x" * 8192, 0
        for index in range(2000):  # 16 MB against 64 queued spans and a 1 MB pipe
            shipper.add(record(index, padding))
            added += 1
            if shipper.dropped >= 100:
                break
        exported, queue_dropped, failed = shipper.counters.read()
        assert (exported, queue_dropped, failed) == (0, 0, 0)  # nothing lost in the process
        assert shipper.dropped >= 100
        receiver.gate.set()
        shipper.shutdown(timeout_s=WAIT_S)
        exported, dropped, failed = shipper.totals()
        assert failed == 0
        assert dropped == shipper.dropped
        assert exported + dropped == added
        assert len(receiver.received.spans()) == exported
    finally:
        receiver.gate.set()
        receiver.stop()


@pytest.mark.parametrize(("no_proxy", "delivered"), [("", False), ("127.0.0.1", True)])
def test_proxy_variables_apply_to_exports_as_read_at_start(
    monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int, no_proxy: str, delivered: bool
) -> None:
    """``HTTP_PROXY`` and ``NO_PROXY`` route span exports as ``requests`` would route them, read
    once when the sender starts (not on every export): through a dead proxy the export fails,
    unless ``NO_PROXY`` exempts the collector, even after the variable is gone."""
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    receiver = HttpReceiver()
    receiver.start()
    try:
        export_env(
            monkeypatch,
            receiver.endpoint,
            "http/protobuf",
            HTTP_PROXY=f"http://127.0.0.1:{unused_tcp_port}",  # nobody listens there
            NO_PROXY=no_proxy,
            OTEL_EXPORTER_OTLP_TIMEOUT="1",
        )
        wire = WireEncoder(Resource({}), InstrumentationScope("test"), SpanLimits())
        sender = Sender(otlp_span_exporter("http/protobuf"), wire)
        monkeypatch.delenv("HTTP_PROXY")  # read already: this changes nothing now
        assert sender.send([record(0, "x")]) is delivered
        assert len(receiver.received.raw) == (1 if delivered else 0)
        sender.shutdown()
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("spec", "cpus"), [("0", {0}), ("2-3", {2, 3}), ("1, 4-5", {1, 4, 5}), ("0,0", {0})]
)
def test_export_cpus_are_read_as_numbers_and_ranges(spec: str, cpus: set[int]) -> None:
    assert parse_cpus(spec) == cpus


@pytest.mark.parametrize("spec", ["", " , ", "one", "3-x"])
def test_an_unreadable_export_cpus_value_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"no CPU listed|invalid literal"):
        parse_cpus(spec)


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs to move the export process to one of them",
)
def test_the_export_process_and_its_threads_run_on_the_cpus_asked_for(
    unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIDECAR_EXPORT_CPUS moves the export process off the sidecar's CPUs, exporter thread
    included (it starts after the move)."""
    target = max(os.sched_getaffinity(0))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{unused_tcp_port}")
    monkeypatch.setenv(EXPORT_CPUS_ENV, str(target))
    shipper = SpanShipper(Setup({"service.name": "t"}, "", ("sidecar", "0", None)))
    try:
        shipper.add(record(0, ""))  # the exporter thread is running once this is read
        deadline = time.monotonic() + 30
        placed: dict[int, set[int]] = {}
        while time.monotonic() < deadline:
            tasks = [int(t) for t in os.listdir(f"/proc/{shipper.process.pid}/task")]
            placed = {task: os.sched_getaffinity(task) for task in tasks}
            if len(placed) >= 2 and all(cpus == {target} for cpus in placed.values()):
                break
            time.sleep(0.05)
        assert len(placed) >= 2
        assert all(cpus == {target} for cpus in placed.values()), placed
    finally:
        shipper.shutdown(timeout_s=5.0)
