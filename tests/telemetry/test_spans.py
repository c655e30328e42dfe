"""Spans: one server span per request, one client span per attempt, GenAI attributes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import openai
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from sidecar.simulator import Simulator
from sidecar.telemetry import names as n
from tests.telemetry.conftest import Observed

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "a secret prompt"}
]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is kind]


async def test_server_and_client_spans_carry_gen_ai_attributes(
    observed: Observed, sim: Simulator
) -> None:
    """A chat request yields a server span and a client span named '{operation} {model}'."""
    await observed.client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Sidecar-User": "alice"}
    )
    spans = observed.spans.get_finished_spans()
    (server,) = by_kind(spans, SpanKind.SERVER)
    (client,) = by_kind(spans, SpanKind.CLIENT)
    assert server.name == "POST /v1/chat/completions"
    assert client.name == "chat gpt-4o-mini"
    assert client.parent is not None
    assert client.parent.span_id == server.context.span_id
    attrs = dict(client.attributes or {})
    assert attrs[n.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[n.GEN_AI_PROVIDER_NAME] == "sim"
    assert attrs[n.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[n.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert int(str(attrs[n.GEN_AI_USAGE_INPUT_TOKENS])) > 0
    assert int(str(attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS])) > 0
    assert attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[n.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[n.SIDECAR_ATTEMPT] == 1
    server_attrs = dict(server.attributes or {})
    assert server_attrs[n.SIDECAR_USER] == "alice"
    assert server_attrs[n.SIDECAR_OPERATION] == "chat"
    assert server_attrs[n.SIDECAR_PRIORITY] == "normal"
    assert server_attrs[n.SIDECAR_CACHE] == "BYPASS"
    assert server_attrs[n.HTTP_RESPONSE_STATUS_CODE] == 200


async def test_the_apps_trace_is_continued_and_passed_upstream(
    observed: Observed, sim: Simulator
) -> None:
    """A W3C traceparent from the app parents the server span; the provider sees our client span."""
    await observed.client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
    )
    spans = observed.spans.get_finished_spans()
    (server,) = by_kind(spans, SpanKind.SERVER)
    (client,) = by_kind(spans, SpanKind.CLIENT)
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID
    upstream_parent = sim.seen[-1].headers["traceparent"].split("-")
    assert upstream_parent[1] == TRACE_ID
    assert upstream_parent[2] == format(client.context.span_id, "016x")


async def test_prompt_and_completion_text_are_not_recorded_by_default(
    observed: Observed,
) -> None:
    """No span attribute holds prompt or completion text unless record_content is on."""
    await observed.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    for span in observed.spans.get_finished_spans():
        for value in (span.attributes or {}).values():
            assert "secret prompt" not in str(value)


async def test_content_is_recorded_when_enabled(
    observe: Callable[..., Awaitable[Observed]],
) -> None:
    """With telemetry.record_content the client span carries input and output messages."""
    observed = await observe(telemetry={"record_content": True})
    async with observed.client:
        await observed.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (client,) = by_kind(observed.spans.get_finished_spans(), SpanKind.CLIENT)
    attrs = dict(client.attributes or {})
    assert "secret prompt" in str(attrs[n.GEN_AI_INPUT_MESSAGES])
    assert "choices" in str(attrs[n.GEN_AI_OUTPUT_MESSAGES])


async def test_errors_mark_both_spans(observed: Observed) -> None:
    """An upstream failure sets error.type and an error status on the server and client spans."""
    with pytest.raises(openai.InternalServerError):
        await observed.client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Mock-Outcome": "503"}
        )
    spans = observed.spans.get_finished_spans()
    for span in (*by_kind(spans, SpanKind.SERVER), *by_kind(spans, SpanKind.CLIENT)):
        assert (span.attributes or {})[n.ERROR_TYPE] == "MODEL_UNAVAILABLE"
        assert span.status.status_code is StatusCode.ERROR


async def test_streamed_request_spans_end_when_the_stream_ends(observed: Observed) -> None:
    """A stream's spans end after the last chunk and carry the usage read from the stream."""
    stream = await observed.client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    spans = observed.spans.get_finished_spans()
    (client,) = by_kind(spans, SpanKind.CLIENT)
    assert int(str((client.attributes or {})[n.GEN_AI_USAGE_OUTPUT_TOKENS])) > 0
    assert len(by_kind(spans, SpanKind.SERVER)) == 1


async def test_a_streamed_responses_call_finishes_once_with_its_final_status(
    observed: Observed,
) -> None:
    """The Responses stream's first event repeats the response "in_progress"; only the status
    it ends with is a finish reason."""
    stream = await observed.client.responses.create(model="gpt-4o-mini", input="hello", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    (client,) = by_kind(observed.spans.get_finished_spans(), SpanKind.CLIENT)
    assert (client.attributes or {})[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("completed",)


async def test_slow_operations_get_a_span_event(
    observe: Callable[..., Awaitable[Observed]], sim: Simulator
) -> None:
    """A request slower than its operation's slow_ms gets a slow_operation event."""
    sim.config.latency_ms = 30
    sim.config.latency_sigma = 0.01
    observed = await observe(operations={"chat": {"slow_ms": 5}})
    async with observed.client:
        await observed.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (server,) = by_kind(observed.spans.get_finished_spans(), SpanKind.SERVER)
    (event,) = [e for e in server.events if e.name == n.EVENT_SLOW_OPERATION]
    assert (event.attributes or {})[n.SIDECAR_THRESHOLD_MS] == 5
    assert float(str((event.attributes or {})[n.SIDECAR_DURATION_MS])) >= 30


async def test_without_a_span_consumer_the_apps_traceparent_passes_through(
    sidecar: TestServer, sim: Simulator
) -> None:
    """With no exporter configured no spans are made, and the provider sees the app's trace."""
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    async with openai.AsyncOpenAI(
        base_url=str(sidecar.make_url("/v1")), api_key="sk-x", max_retries=0
    ) as client:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"traceparent": traceparent}
        )
    assert sim.seen[-1].headers["traceparent"] == traceparent


async def test_the_standard_sampler_variables_apply(
    observe: Callable[..., Awaitable[Observed]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_TRACES_SAMPLER=traceidratio with ratio 0 records no spans: cost scales with it."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    observed = await observe()
    async with observed.client:
        await observed.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert observed.spans.get_finished_spans() == ()
