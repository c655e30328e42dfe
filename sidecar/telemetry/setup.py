"""SDK and exporter set-up: the one module that touches the OpenTelemetry SDK.

Export is configured purely by the standard ``OTEL_*`` variables, read from the environment by
the SDK itself: OTLP (gRPC or HTTP/protobuf) when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set,
through a batch span processor and a periodic metric reader, so a slow or absent collector never
delays a request and memory stays bounded (spans beyond the queue are dropped). ``GET /metrics``
exposes the same instruments.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence

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
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from sidecar import __version__
from sidecar.telemetry import names as n

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
    """The tracer and meter providers of one sidecar, with their exporters."""

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
        processors: list[SpanProcessor] = []
        if span_exporter is not None:
            processors.append(SimpleSpanProcessor(span_exporter))
        if span_processor is not None:
            processors.append(span_processor)
        if protocol := otlp_protocol("traces", env):
            processors.append(BatchSpanProcessor(otlp_span_exporter(protocol)))
        # Whether anyone consumes spans; without a consumer the pipeline creates none at all.
        self.tracing = bool(processors)
        sampler = None if processors else ALWAYS_OFF
        self.tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        for processor in processors:
            self.tracer_provider.add_span_processor(processor)

        self.registry = CollectorRegistry()
        readers: list[MetricReader] = [
            PrometheusMetricReader(registry=self.registry),
            *metric_readers,
        ]
        if protocol := otlp_protocol("metrics", env):
            readers.append(PeriodicExportingMetricReader(otlp_metric_exporter(protocol)))
        self.meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, views=_views()
        )
        self.tracer: Tracer = self.tracer_provider.get_tracer("sidecar", __version__)
        self.meter = self.meter_provider.get_meter("sidecar", __version__)
        self.instruments = Instruments(self.meter)

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Flush and stop, waiting at most ``timeout_s``.

        The SDK's batch processor ignores flush timeouts and tries every queued batch against
        the exporter's own timeout, so a dead collector could hold shutdown for half a minute.
        It runs in a daemon thread instead; whatever is not out by then is dropped.
        """

        def stop() -> None:
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)

        worker = threading.Thread(target=stop, name="otel-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)


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
