"""Compact spans are the SDK's spans: same ids, flags, attributes, events, links, status, bytes.

The same script of span calls runs against the OpenTelemetry SDK's tracer and against
:class:`CompactTracer` (the same deterministic ids and timestamps for both). What the SDK hands
its span processors is compared with what :func:`readable_span` rebuilds from the compact
span's record, and the OTLP protobuf the SDK's encoder makes from the SDK's spans with the bytes
:class:`WireEncoder` writes from the records.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, DEFAULT_ON, Sampler, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sidecar.pipeline.telemetry import inject, parent_context
from sidecar.telemetry.otlp_wire import WireEncoder
from sidecar.telemetry.spans import CompactTracer, SpanRecord, readable_span

RESOURCE = Resource({"service.name": "sidecar-test", "service.version": "9.9"})
SCOPE = InstrumentationScope("sidecar", "9.9", None, None)
APP_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
propagator = TraceContextTextMapPropagator()


class CountingIds(IdGenerator):
    """Ids 1, 2, 3...: the two tracers under comparison draw the same ones."""

    def __init__(self) -> None:
        self.next = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self.next)

    def generate_trace_id(self) -> int:
        return next(self.next) << 64

    def is_trace_id_random(self) -> bool:
        return True


def script(tracer: trace.Tracer, app: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Every span call the sidecar makes, and the ones it might, under the app's trace headers
    ``app``; returns the traceparents the spans would send upstream."""
    clock = itertools.count(1_700_000_000_000_000_000, 1000)
    sent: list[dict[str, str]] = []
    parent = propagator.extract({"traceparent": APP_TRACEPARENT} if app is None else app)
    server = tracer.start_span(
        "POST /v1/chat/completions",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "sidecar.request_id": "r1"},
        start_time=next(clock),
    )
    token = context.attach(trace.set_span_in_context(server))
    try:
        link = Link(SpanContext(7 << 64, 8, True, TraceFlags(1)), {"why": "batch"})
        client = tracer.start_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "sidecar.attempt": 1, "server.port": 80},
            links=[link],
            start_time=next(clock),
        )
        headers: dict[str, str] = {}
        propagator.inject(headers, context=trace.set_span_in_context(client))
        sent.append(headers)
        client.add_event("sidecar.retry", {"sidecar.delay_s": 0.25, "error.type": "TIMEOUT"},
                         timestamp=next(clock))  # fmt: skip
        client.set_attributes(
            {
                "gen_ai.usage.input_tokens": 9,
                "gen_ai.response.finish_reasons": ["stop", "length"],
                "sidecar.cost_usd": 0.000125,
                "sidecar.fallback": False,
                "sidecar.negative": -3,
                "sidecar.big": 2**62,
                "sidecar.empty": "",
                "sidecar.raw": b"\x00\x01",
            }
        )
        client.set_attribute("sidecar.attempt", 2)  # set again: moves last, as in the SDK
        client.add_link(SpanContext(9 << 64, 10, False), None)
        client.add_link(SpanContext(0, 0, False), None)  # invalid, without attributes: ignored
        client.set_status(Status(StatusCode.ERROR, "TIMEOUT"))
        client.end(end_time=next(clock))
        client.set_attribute("after.end", 1)  # ignored, as the SDK ignores it
    finally:
        context.detach(token)
    server.add_event("sidecar.cache_hit", timestamp=next(clock))
    server.record_exception(ValueError("bad"), {"extra": "x"}, timestamp=next(clock))
    server.update_name("POST /v1/{path}")
    server.set_attributes({"http.response.status_code": 200, "sidecar.user": "alice"})
    server.set_status(StatusCode.OK)
    server.set_status(Status(StatusCode.ERROR, "too late"))  # OK is final
    server.end(end_time=next(clock))
    root = tracer.start_span("orphan", context=context.Context(), start_time=next(clock))
    root.set_attribute("odd", {"nested": 1})  # a mapping: left to the SDK's cleaning
    root.set_attribute("huge", 2**70)  # beyond int64: the SDK's encoder drops it
    root.end(end_time=next(clock))
    return sent


def run_sdk(
    sampler: Sampler, app: dict[str, str] | None = None
) -> tuple[tuple[ReadableSpan, ...], list[dict[str, str]]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider(
        sampler=sampler, resource=RESOURCE, id_generator=CountingIds(), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(spans))
    sent = script(provider.get_tracer(SCOPE.name, SCOPE.version), app)
    return spans.get_finished_spans(), sent


def run_compact(
    sampler: Sampler, app: dict[str, str] | None = None
) -> tuple[list[SpanRecord], list[dict[str, str]]]:
    records: list[SpanRecord] = []
    sent = script(CompactTracer([records.append], sampler, CountingIds()), app)
    return records, sent


def fields(span: ReadableSpan) -> dict[str, object]:
    """What a span processor can read from a span."""
    return {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "dropped_attributes": span.dropped_attributes,
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "dropped_events": span.dropped_events,
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "status": (span.status.status_code, span.status.description),
        "times": (span.start_time, span.end_time),
        "resource": span.resource.attributes,
        "scope": span.instrumentation_scope,
    }


def rebuilt(records: Sequence[SpanRecord], limits: SpanLimits) -> list[ReadableSpan]:
    return [readable_span(record, RESOURCE, SCOPE, limits) for record in records]


def test_compact_spans_are_what_the_sdk_records() -> None:
    """Field for field, the rebuilt spans equal the SDK's, and so do the traceparents sent."""
    sdk_spans, sdk_sent = run_sdk(ALWAYS_ON)
    records, sent = run_compact(ALWAYS_ON)
    assert len(sdk_spans) == 3
    assert [fields(span) for span in rebuilt(records, SpanLimits())] == [
        fields(span) for span in sdk_spans
    ]
    assert sent == sdk_sent
    assert sent[0]["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")


@pytest.mark.parametrize(
    "limits",
    [
        {},
        {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3", "OTEL_SPAN_EVENT_COUNT_LIMIT": "1"},
        {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4", "OTEL_SPAN_LINK_COUNT_LIMIT": "1"},
    ],
)
def test_the_wire_encoder_writes_the_sdks_bytes(
    limits: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OTLP request is byte for byte the SDK encoder's, limits and odd values included
    (spans the encoder does not write itself go through the SDK's encoder)."""
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    sdk_spans, _ = run_sdk(ALWAYS_ON)
    records, _ = run_compact(ALWAYS_ON)
    expected = encode_spans(sdk_spans).SerializeToString()
    encoder = WireEncoder(RESOURCE, SCOPE, SpanLimits())
    assert encoder.request(records) == expected
    assert encode_spans(rebuilt(records, SpanLimits())).SerializeToString() == expected
    if not limits:  # only the span with values the SDK must clean is left to the SDK
        assert encoder.fallbacks == 1


def test_the_sampler_decides_as_in_the_sdk() -> None:
    """A sampler that drops everything records nothing, and the upstream sees the same flags."""
    sdk_spans, sdk_sent = run_sdk(TraceIdRatioBased(0.0))
    records, sent = run_compact(TraceIdRatioBased(0.0))
    assert sdk_spans == ()
    assert records == []
    assert sent == sdk_sent
    assert int(sent[0]["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0  # not sampled


APP_HEADERS = {
    "no trace": {},
    "sampled": {"traceparent": APP_TRACEPARENT},
    "not sampled": {"traceparent": APP_TRACEPARENT[:-2] + "00"},
    "with tracestate": {"traceparent": APP_TRACEPARENT, "tracestate": "vendor=abc,other=1"},
}


@pytest.mark.parametrize("app", APP_HEADERS.values(), ids=APP_HEADERS.keys())
def test_the_default_sampler_decides_as_in_the_sdk(app: dict[str, str]) -> None:
    """The SDK's default sampler (ParentBased(ALWAYS_ON)), whose decision the tracer makes
    without calling it: the same spans, trace state and upstream flags as the SDK's."""
    sdk_spans, sdk_sent = run_sdk(DEFAULT_ON, app)
    records, sent = run_compact(DEFAULT_ON, app)
    assert CompactTracer([], DEFAULT_ON).follows_parent
    assert [fields(span) for span in rebuilt(records, SpanLimits())] == [
        fields(span) for span in sdk_spans
    ]
    assert sent == sdk_sent
    assert len(records) == (1 if app.get("traceparent", "").endswith("-00") else 3)


@pytest.mark.parametrize("app", APP_HEADERS.values(), ids=APP_HEADERS.keys())
def test_the_pipeline_reads_and_writes_trace_headers_as_the_propagator(
    app: dict[str, str],
) -> None:
    """``parent_context`` and ``inject`` (the request path's shortcuts) give what the W3C
    TraceContext propagator gives, header names in any case."""
    headers = CIMultiDictProxy(CIMultiDict({k.title(): v for k, v in app.items()}))
    ours_parent, their_parent = parent_context(headers), propagator.extract(headers)
    assert ours_parent.keys() == their_parent.keys()
    assert (
        trace.get_current_span(ours_parent).get_span_context()
        == trace.get_current_span(their_parent).get_span_context()
    )
    tracer = CompactTracer([], DEFAULT_ON, CountingIds())
    span = tracer.start_span("chat", context=parent_context(headers))
    ours: dict[str, str] = {}
    inject(ours, span)
    theirs: dict[str, str] = {}
    propagator.inject(theirs, context=trace.set_span_in_context(span))
    assert ours == theirs
    assert "traceparent" in ours
    nothing: dict[str, str] = {}
    inject(nothing, trace.INVALID_SPAN)
    assert nothing == {}
