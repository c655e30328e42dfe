"""SDK and exporter set-up: the one module that touches the OpenTelemetry SDK.

Export is configured purely by the standard ``OTEL_*`` variables, read from the environment by
the SDK itself: OTLP (gRPC or HTTP/protobuf) when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set.
Spans go through an export process (:mod:`sidecar.telemetry.shipping`) and metrics through a
periodic metric reader, so a slow or absent collector never delays a request and memory stays
bounded (spans beyond the queues are dropped, and counted). ``GET /metrics`` exposes the same
instruments.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, _get_from_env_or_default
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from sidecar import __version__
from sidecar.telemetry import names as n
from sidecar.telemetry.metric_export import MetricExport, SharedMetricReader, shares_aggregation
from sidecar.telemetry.shipping import Setup, SpanShipper
from sidecar.telemetry.spans import CompactTracer, LocalSpans, RecordSink

log = logging.getLogger(__name__)

Env = Mapping[str, str]


def otlp_protocol(signal: str, env: Env) -> str | None:
    """The OTLP protocol for ``traces`` or ``metrics``, or None when export is not configured."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if "otlp" not in env.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp"):
        return None
    endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    return (
        env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )


def otlp_span_exporter(protocol: str) -> SpanExporter:
    return GrpcSpanExporter() if protocol == "grpc" else HttpSpanExporter()


def otlp_metric_exporter(protocol: str) -> MetricExporter:
    return GrpcMetricExporter() if protocol == "grpc" else HttpMetricExporter()


class Instruments:
    """Every metric instrument, created once per process. Names: :mod:`names`."""

    def __init__(self, meter: Meter) -> None:
        histogram, counter = meter.create_histogram, meter.create_counter
        self.operation_duration: Histogram = histogram(
            n.GEN_AI_CLIENT_OPERATION_DURATION, "s", "GenAI operation duration"
        )
        self.token_usage: Histogram = histogram(
            n.GEN_AI_CLIENT_TOKEN_USAGE, "{token}", "Tokens used per operation"
        )
        self.time_to_first_chunk: Histogram = histogram(
            n.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK, "s", "Time to the first streamed chunk"
        )
        self.overhead: Histogram = histogram(
            n.SIDECAR_OVERHEAD, "s", "Time spent in the sidecar itself"
        )
        self.requests: Counter = counter(n.SIDECAR_REQUESTS, "{request}", "Requests by outcome")
        self.cost: Counter = counter(n.SIDECAR_COST, "{USD}", "Model cost in US dollars")
        self.fallbacks: Counter = counter(n.SIDECAR_FALLBACKS, "{fallback}", "Model fallbacks")
        self.retries: Counter = counter(n.SIDECAR_RETRIES, "{retry}", "Upstream retries")
        self.cache_lookups: Counter = counter(n.SIDECAR_CACHE_LOOKUPS, "{lookup}", "Cache lookups")
        self.budget_utilization: Histogram = histogram(
            n.SIDECAR_BUDGET_UTILIZATION, "1", "Share of the user's monthly budget used"
        )
        self.cost_unpriced: Counter = counter(
            n.SIDECAR_COST_UNPRICED, "{request}", "Calls to models missing from the price table"
        )
        self.ratelimit_rejections: Counter = counter(
            n.SIDECAR_RATELIMIT_REJECTIONS, "{request}", "Requests refused by a rate limit"
        )
        self.slow_operations: Counter = counter(
            n.SIDECAR_SLOW_OPERATIONS, "{request}", "Requests slower than their slow_ms"
        )


def _views() -> list[View]:
    def buckets(name: str, boundaries: Sequence[float]) -> View:
        return View(
            instrument_name=name,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=boundaries),
        )

    return [
        buckets(n.GEN_AI_CLIENT_OPERATION_DURATION, n.DURATION_BUCKETS_S),
        buckets(n.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK, n.DURATION_BUCKETS_S),
        buckets(n.GEN_AI_CLIENT_TOKEN_USAGE, n.TOKEN_BUCKETS),
        buckets(n.SIDECAR_OVERHEAD, n.OVERHEAD_BUCKETS_S),
        buckets(n.SIDECAR_BUDGET_UTILIZATION, n.UTILIZATION_BUCKETS),
    ]


class OtelProviders:
    """The tracer and meter providers of one sidecar, with their exporters.

    Spans are :mod:`compact <sidecar.telemetry.spans>` on the request path; with an OTLP traces
    endpoint they are encoded and sent by an export process (:mod:`.shipping`), and any span
    consumer passed in gets the SDK's ``ReadableSpan`` in process. Metrics are the SDK's, with
    one aggregation for ``/metrics`` and OTLP (:mod:`.metric_export`).
    """

    def __init__(
        self,
        *,
        otlp: bool = True,
        span_exporter: SpanExporter | None = None,
        span_processor: SpanProcessor | None = None,
        metric_readers: Sequence[MetricReader] = (),
    ) -> None:
        """``otlp=False`` ignores the OTLP variables (tests that must not export anywhere);
        ``span_exporter`` (exported span by span) and ``span_processor`` add span consumers."""
        env: Env = os.environ if otlp else {}
        attributes = {"service.version": __version__}
        if "OTEL_SERVICE_NAME" not in os.environ:
            attributes["service.name"] = "llm-sidecar"  # the SDK would say unknown_service
        resource = Resource.create(attributes)
        scope = InstrumentationScope("sidecar", __version__, None, None)
        processors: list[SpanProcessor] = []
        if span_exporter is not None:
            processors.append(SimpleSpanProcessor(span_exporter))
        if span_processor is not None:
            processors.append(span_processor)
        # As the SDK's tracer provider: OTEL_SDK_DISABLED=true records no span at all.
        disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        sinks: list[RecordSink] = []
        self.local = LocalSpans(processors, resource, scope) if processors else None
        if self.local is not None and not disabled:
            sinks.append(self.local)
        self.shipper: SpanShipper | None = None
        if otlp_protocol("traces", env):
            setup = Setup(
                dict(resource.attributes), resource.schema_url, ("sidecar", __version__, None)
            )
            self.shipper = SpanShipper(setup)
            sinks.append(self.shipper.add)
        # Whether anyone consumes spans; without a consumer the pipeline creates none at all.
        self.tracing = bool(sinks)
        # The sampler the SDK's tracer provider would build from OTEL_TRACES_SAMPLER(_ARG).
        sampler = _get_from_env_or_default() if sinks else ALWAYS_OFF
        # Spans the shipper would drop are not built, unless a span consumer in process wants them.
        backlog = self.shipper if self.shipper is not None and len(sinks) == 1 else None
        self.tracer: Tracer = CompactTracer(sinks, sampler, backlog=backlog)

        self.registry = CollectorRegistry()
        prometheus = SharedMetricReader(self.registry)
        readers: list[MetricReader] = [prometheus, *metric_readers]
        metrics_protocol = otlp_protocol("metrics", env)
        shared = metrics_protocol is not None and shares_aggregation(env)
        if metrics_protocol is not None and not shared:
            readers.append(PeriodicExportingMetricReader(otlp_metric_exporter(metrics_protocol)))
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, views=_views()
        )
        self.metric_export: MetricExport | None = None
        if metrics_protocol is not None and shared:  # one aggregation for /metrics and OTLP
            self.metric_export = MetricExport(prometheus, otlp_metric_exporter(metrics_protocol))
        self.meter = self.meter_provider.get_meter("sidecar", __version__)
        self.instruments = Instruments(self.meter)
        if self.shipper is not None:
            self._observe_export(self.shipper)

    def _observe_export(self, shipper: SpanShipper) -> None:
        """Spans the collector took, and spans lost on the way (by reason)."""

        def exported(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(shipper.totals()[0])

        def dropped(options: CallbackOptions) -> Iterable[Observation]:
            _, queue, export = shipper.totals()
            yield Observation(queue, {n.LABEL_DROP_REASON: "queue"})
            yield Observation(export, {n.LABEL_DROP_REASON: "export"})

        self.meter.create_observable_counter(
            n.SIDECAR_TELEMETRY_EXPORTED, callbacks=[exported], unit="{span}",
            description="Spans the OTLP collector accepted",
        )  # fmt: skip
        self.meter.create_observable_counter(
            n.SIDECAR_TELEMETRY_DROPPED, callbacks=[dropped], unit="{span}",
            description="Spans lost: a bounded export queue was full, or the collector failed",
        )  # fmt: skip

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Flush and stop, waiting at most ``timeout_s``.

        The export process gets what is pending and sends what it holds; past ``timeout_s`` it
        is stopped. The SDK's metric reader and in-process span processors may ignore flush
        timeouts and try against the exporter's own timeout, so a dead collector could hold
        shutdown for half a minute: they stop in a daemon thread instead, and whatever is not
        out by then is dropped.
        """
        deadline = time.monotonic() + timeout_s

        def stop() -> None:
            if self.local is not None:
                self.local.shutdown()
            if self.metric_export is not None:
                self.metric_export.shutdown(timeout_s)
            self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)

        worker = threading.Thread(target=stop, name="otel-shutdown", daemon=True)
        worker.start()
        if self.shipper is not None:
            self.shipper.shutdown(timeout_s)
        worker.join(max(0.0, deadline - time.monotonic()))


# Loggers whose warnings mean "telemetry is not getting out": the exporters, the batch processor
# (its queue fills when exports fail) and the periodic metric reader.
_EXPORT_LOGGERS = frozenset(
    {"opentelemetry.sdk._shared_internal", "opentelemetry.sdk.metrics._internal.export"}
)


class ExportWarnings(logging.Filter):
    """One clear warning when exporting telemetry fails, not one per batch.

    Attached to the log handlers at start-up. The OpenTelemetry exporters log every failed
    batch; a dead collector would otherwise fill the log while requests keep flowing fine.
    """

    def __init__(self, quiet_s: float = 300.0) -> None:
        super().__init__()
        self.quiet_s = quiet_s
        self._last = -quiet_s

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in _EXPORT_LOGGERS and not record.name.startswith(
            "opentelemetry.exporter"
        ):
            return True
        if record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        if now - self._last < self.quiet_s:
            return False
        self._last = now
        original = record.getMessage()
        record.msg = (
            "telemetry export is failing (is the OTLP collector at OTEL_EXPORTER_OTLP_ENDPOINT "
            "up?); requests are unaffected, telemetry is dropped; repeats silenced for %d s: %s"
        )
        record.args = (int(self.quiet_s), original)
        return True
