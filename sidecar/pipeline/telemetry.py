"""Telemetry stages: a server span per request and a client span per upstream attempt.

``RequestTelemetry`` is the outermost stage: it continues the app's W3C trace, times the whole
request, records the metrics and rolling statistics, and flags slow operations. ``AttemptSpan``
sits just before the upstream call, so every retry and fallback gets its own client span named
``{gen_ai.operation.name} {gen_ai.request.model}``, and the provider sees that span as parent.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Sequence
from contextvars import Token
from urllib.parse import urlsplit

import orjson
from multidict import CIMultiDictProxy
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from sidecar.errors import SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.openai_api import GEN_AI_OPERATIONS, MODEL_ENDPOINTS
from sidecar.pipeline.base import Next
from sidecar.pipeline.cache import cache_scope
from sidecar.stream import NO_EVENTS, EndReason, StreamEnd
from sidecar.telemetry import names as n
from sidecar.telemetry.recorder import Telemetry
from sidecar.telemetry.stats import is_refusal

_propagator = TraceContextTextMapPropagator()
_NO_PARENT = Context()


def parent_context(headers: CIMultiDictProxy[str]) -> Context:
    """The app's W3C trace context, as the TraceContext propagator extracts it; a request
    without a ``traceparent`` (most of them) gets the empty context it would return."""
    return _propagator.extract(headers) if "traceparent" in headers else _NO_PARENT


def inject(headers: dict[str, str], span: Span) -> None:
    """The ``traceparent`` and ``tracestate`` the TraceContext propagator writes for ``span``,
    written without looking the span up in a new context first."""
    span_context = span.get_span_context()
    if span_context == trace.INVALID_SPAN_CONTEXT:
        return
    headers["traceparent"] = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    )
    if span_context.trace_state:
        headers["tracestate"] = span_context.trace_state.to_header()


def gen_ai_operation(ex: Exchange) -> str:
    return GEN_AI_OPERATIONS.get(ex.path, ex.operation)


class RequestTelemetry:
    def __init__(self, telemetry: Telemetry) -> None:
        self.t = telemetry

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        span, token = self._start(ex) if self.t.providers.tracing else (trace.INVALID_SPAN, None)
        try:
            reply = await call_next(ex)
        except BaseException as exc:  # the client went away (cancelled) or a bug below us
            ex.error_code = ex.error_code or type(exc).__name__
            self._finish(ex, span, 499, None)
            raise
        finally:
            if token is not None:
                context.detach(token)
        if reply.stream is None:
            self._finish(ex, span, reply.status, None)
        else:
            reply.observers.append(_RequestStream(self, ex, span, reply.status))
        return reply

    def _start(self, ex: Exchange) -> tuple[Span, Token[Context]]:
        """The server span, continuing the app's W3C trace, made current for the stages below."""
        route = f"/v1/{ex.path}" if ex.path in MODEL_ENDPOINTS else "/v1/{path}"
        span = self.t.tracer.start_span(
            f"{ex.method} {route}",
            context=parent_context(ex.headers),
            kind=SpanKind.SERVER,
            attributes={
                n.HTTP_REQUEST_METHOD: ex.method,
                n.HTTP_ROUTE: route,
                n.SIDECAR_REQUEST_ID: ex.request_id,
            },
        )
        if route.endswith("{path}"):  # for model endpoints the route already is the path
            span.set_attribute(n.URL_PATH, f"/v1/{ex.path}")
        return span, context.attach(trace.set_span_in_context(span))

    def _finish(self, ex: Exchange, span: Span, status: int, first_chunk_s: float | None) -> None:
        duration = time.perf_counter() - ex.started
        ok = status < 400 and ex.error_code is None
        hit = ex.cache == "HIT"
        # The app hanging up is not the sidecar failing: no error outcome, no error status
        # (which would also keep every such trace in the collector's errors policy).
        gone = ex.error_code in n.CLIENT_GONE_CODES
        metrics, batch = self.t.metrics, self.t.batch
        labels = self.t.labels(ex)
        if ex.limited_by is not None:
            outcome = n.OUTCOME_RATE_LIMITED
        elif hit:
            outcome = n.OUTCOME_CACHE_HIT
        elif gone:
            outcome = n.OUTCOME_CLIENT_GONE
        else:
            outcome = n.OUTCOME_SUCCESS if ok else n.OUTCOME_ERROR
        batch.add(
            metrics.requests,
            1,
            {**labels, n.LABEL_OUTCOME: outcome, n.LABEL_ERROR_CODE: ex.error_code or ""},
        )
        batch.record(
            metrics.overhead, max(0.0, duration - ex.upstream_s), {n.LABEL_OPERATION: ex.operation}
        )
        if ex.model is not None and not hit and _model_call(ex):
            self._gen_ai_metrics(ex, span, duration, first_chunk_s)
        if ex.cost_usd:
            batch.add(metrics.cost, float(ex.cost_usd), labels)
        slow = self._check_slow(ex, span, duration)
        self.t.stats.record(
            ex.operation,
            str(labels[n.LABEL_MODEL]),
            duration,
            ok=ok,
            cache_hit=hit,
            slow=slow,
            cost_micros=int(ex.cost_usd * 1_000_000) if ex.cost_usd else 0,
            # Within the cache's scope: the same body from 40 users is no repeat a per-user
            # cache could answer, and advice to raise cache_ttl_s would be wrong.
            fingerprint=hash((cache_scope(ex), ex.raw_body)) if ex.model is not None else 0,
            error_code=None if ok else ex.error_code or f"HTTP_{status}",
            refused=not ok and is_refusal(ex.error_reason),
        )
        if span.is_recording():  # with no exporter configured, spans are not recorded at all
            span.set_attributes(self._attributes(ex, status))
            if not ok and not gone:
                span.set_status(Status(StatusCode.ERROR, ex.error_code))
        span.end()

    def _gen_ai_metrics(
        self, ex: Exchange, span: Span, duration: float, first_chunk_s: float | None
    ) -> None:
        attributes: dict[str, AttributeValue] = {
            n.GEN_AI_OPERATION_NAME: gen_ai_operation(ex),
            n.GEN_AI_PROVIDER_NAME: ex.provider_name,
            n.GEN_AI_REQUEST_MODEL: self.t.models.fold(ex.model),
        }
        if ex.error_code:
            attributes[n.ERROR_TYPE] = ex.error_code
        metrics, batch = self.t.metrics, self.t.batch
        # The request's span rides with its latencies when it is sampled: exemplars.
        sampled = span if span.get_span_context().trace_flags.sampled else None
        batch.record(metrics.operation_duration, duration, attributes, sampled)
        if first_chunk_s is not None:
            batch.record(metrics.time_to_first_chunk, first_chunk_s, attributes, sampled)
        if ex.usage is not None:
            for kind, tokens in (
                ("input", ex.usage.input_tokens),
                ("output", ex.usage.output_tokens),
            ):
                batch.record(metrics.token_usage, tokens, {**attributes, n.GEN_AI_TOKEN_TYPE: kind})

    def _check_slow(self, ex: Exchange, span: Span, duration: float) -> bool:
        threshold_ms = ex.op.slow_ms
        if threshold_ms is None or duration * 1000 <= threshold_ms:
            return False
        model = self.t.models.fold(ex.upstream_model or ex.model)
        span.add_event(
            n.EVENT_SLOW_OPERATION,
            {n.SIDECAR_DURATION_MS: duration * 1000, n.SIDECAR_THRESHOLD_MS: threshold_ms},
        )
        self.t.batch.add(
            self.t.metrics.slow_operations,
            1,
            {n.LABEL_OPERATION: ex.operation, n.LABEL_MODEL: model},
        )
        self.t.alerts.notify(
            ("slow_operation", ex.operation, model),
            {
                "alert": "slow_operation",
                "operation": ex.operation,
                "model": ex.upstream_model or ex.model,
                "duration_ms": round(duration * 1000, 1),
                "threshold_ms": threshold_ms,
                "trace_id": _trace_id(span) or _apps_trace_id(ex),
                "request_id": ex.request_id,
            },
        )
        return True

    def _attributes(self, ex: Exchange, status: int) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            n.HTTP_RESPONSE_STATUS_CODE: status,
            n.SIDECAR_USER: ex.user,
            n.SIDECAR_OPERATION: ex.operation,
            n.SIDECAR_PRIORITY: ex.priority,
            n.SIDECAR_CACHE: ex.cache,
        }
        # The GenAI attributes (usage, response model...) live on the client spans.
        if ex.model is not None:
            attributes[n.GEN_AI_REQUEST_MODEL] = ex.model
        if ex.cost_usd is not None:
            attributes[n.SIDECAR_COST_USD] = float(ex.cost_usd)
        if ex.fallback:
            attributes[n.SIDECAR_FALLBACK] = ex.fallback
        if ex.error_code:
            attributes[n.ERROR_TYPE] = ex.error_code
        return attributes


class _RequestStream:
    """Times the first chunk and finishes the request's telemetry when the stream ends."""

    def __init__(self, stage: RequestTelemetry, ex: Exchange, span: Span, status: int) -> None:
        self.stage, self.ex, self.span, self.status = stage, ex, span, status
        self.first_chunk_s: float | None = None

    def on_event(self, event: bytes) -> bytes | None:
        if self.first_chunk_s is None:
            self.first_chunk_s = time.perf_counter() - self.ex.started
        return event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        if end.error is not None:
            self.ex.error_code = end.error.code.value
            self.ex.error_reason = end.error.reason
            self.span.add_event(n.EVENT_STREAM_ERROR, {n.ERROR_TYPE: end.error.code.value})
        elif end.reason is EndReason.CLIENT_GONE:
            self.ex.error_code = self.ex.error_code or "client_closed"
        self.stage._finish(self.ex, self.span, self.status, self.first_chunk_s)
        return NO_EVENTS


# Failures that say something about the model side even when no call was sent: an open
# circuit or a resting provider (MODEL_UNAVAILABLE), a deadline spent (TIMEOUT).
_MODEL_SIDE = frozenset({"NETWORK", "MODEL_UNAVAILABLE", "TIMEOUT"})


def _model_call(ex: Exchange) -> bool:
    """Whether the request counts as a GenAI client operation: it was sent upstream, or it
    failed for the model side's state. A request the sidecar refused by its own policy (rate
    limit, budget, input checks), shed from a full provider queue (``queue_timeout``) or found
    malformed never was one: counting it would read as the provider failing (the
    SidecarUpstreamUnhealthy page) and mix millisecond refusals into model latency."""
    if ex.attempts:
        return True
    return ex.error_code in _MODEL_SIDE and ex.error_reason is None


def _trace_id(span: Span) -> str | None:
    trace_id = span.get_span_context().trace_id
    return format(trace_id, "032x") if trace_id else None


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def _apps_trace_id(ex: Exchange) -> str | None:
    """With tracing off there is no span: the app's own trace (its traceparent), if valid."""
    found = _TRACEPARENT.fullmatch(ex.headers.get("traceparent", "").strip())
    return found.group(1) if found and found.group(1) != "0" * 32 else None


def response_attributes(ex: Exchange) -> dict[str, AttributeValue]:
    """What the answer told us; the request's attributes were set when the span started."""
    attributes: dict[str, AttributeValue] = {}
    if ex.response_model:
        attributes[n.GEN_AI_RESPONSE_MODEL] = ex.response_model
    if ex.usage is not None:
        attributes[n.GEN_AI_USAGE_INPUT_TOKENS] = ex.usage.input_tokens
        attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS] = ex.usage.output_tokens
    if ex.finish_reasons:
        attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] = list(ex.finish_reasons)
    return attributes


class AttemptSpan:
    def __init__(self, telemetry: Telemetry) -> None:
        self.t = telemetry

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        if not self.t.providers.tracing:
            return await call_next(ex)  # the app's own traceparent still reaches the provider
        operation = gen_ai_operation(ex)
        model = ex.upstream_model
        attributes: dict[str, AttributeValue] = {
            n.GEN_AI_OPERATION_NAME: operation,
            n.GEN_AI_PROVIDER_NAME: ex.provider_name,
            n.SIDECAR_ATTEMPT: ex.attempts + 1,
        }
        if model:
            attributes[n.GEN_AI_REQUEST_MODEL] = model
        if ex.provider is not None:
            attributes.update(_server_attributes(ex.provider.base_url))
        span = self.t.tracer.start_span(
            f"{operation} {model}" if model else operation,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        span_context = trace.set_span_in_context(span)
        inject(ex.upstream_headers, span)
        if self.t.settings.telemetry.record_content and ex.body is not None:
            span.set_attribute(n.GEN_AI_INPUT_MESSAGES, _content(ex.body))
        token = context.attach(span_context)
        try:
            reply = await call_next(ex)
        except SidecarError as err:
            _end(span, ex, error=err.code.value)
            raise
        except BaseException as exc:
            _end(span, ex, error=type(exc).__name__)
            raise
        finally:
            context.detach(token)
        if reply.stream is None:
            if self.t.settings.telemetry.record_content and reply.body:
                span.set_attribute(
                    n.GEN_AI_OUTPUT_MESSAGES, reply.body[:65536].decode(errors="replace")
                )
            _end(span, ex, error=None)
        else:
            reply.observers.append(_AttemptStream(span, ex))
        return reply


class _AttemptStream:
    """Ends the attempt's client span when its stream ends, with usage read from the stream."""

    def __init__(self, span: Span, ex: Exchange) -> None:
        self.span, self.ex = span, ex

    def on_event(self, event: bytes) -> bytes | None:
        return event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        _end(
            self.span,
            self.ex,
            error=end.error.code.value if end.upstream_failed and end.error else None,
        )
        return NO_EVENTS


@functools.cache
def _server_attributes(base_url: str) -> dict[str, AttributeValue]:
    address = urlsplit(base_url)
    port = address.port or (443 if address.scheme == "https" else 80)
    return {n.SERVER_ADDRESS: address.hostname or "", n.SERVER_PORT: port}


def _end(span: Span, ex: Exchange, *, error: str | None) -> None:
    if not span.is_recording():
        span.end()
        return
    span.set_attributes(response_attributes(ex))
    if error is not None:
        span.set_attribute(n.ERROR_TYPE, error)
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def _content(body: dict[str, object]) -> str:
    content = body.get("messages", body.get("input", body.get("prompt")))
    return orjson.dumps(content).decode()[:65536]
