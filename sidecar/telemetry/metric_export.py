"""OTLP metric export from the same aggregation ``/metrics`` serves: each value recorded once.

The SDK aggregates every measurement once per metric reader. A Prometheus reader for ``/metrics``
plus the SDK's periodic OTLP reader therefore doubled the cost of each recorded value (four
histogram values a request: 31 µs with one reader, 70 µs with two, on this class of machine),
on the event loop, whenever OTLP export was on. Both need cumulative sums of the same
instruments, so here OTLP export reads the Prometheus reader's aggregation: every
``OTEL_METRIC_EXPORT_INTERVAL`` ms (60000) a daemon thread collects it and hands the snapshot
to the SDK's OTLP metric exporter, and once more at shutdown. A snapshot taken for OTLP is not
queued for the next scrape.

Configurations that need the exporter's own aggregation (``..._TEMPORALITY_PREFERENCE`` delta or
lowmemory, a non-default ``..._DEFAULT_HISTOGRAM_AGGREGATION``) keep the SDK's separate reader:
:func:`shares_aggregation` says which.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION,
    OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
    OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_METRIC_EXPORT_TIMEOUT,
)
from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData
from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)


def shares_aggregation(env: Mapping[str, str]) -> bool:
    """Whether OTLP can read the Prometheus reader's cumulative, explicit-bucket aggregation."""
    temporality = env.get(OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, "").strip().lower()
    histograms = env.get(OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION, "")
    return temporality in ("", "cumulative") and histograms.strip().lower() in (
        "",
        "explicit_bucket_histogram",
    )


class SharedMetricReader(PrometheusMetricReader):
    """The Prometheus reader, which can also be collected for OTLP (``collect_for_export``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry=registry)
        self._exporting = threading.local()

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        taken: list[MetricsData] | None = getattr(self._exporting, "taken", None)
        if taken is not None:
            taken.append(metrics_data)
            return
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def collect_for_export(self, timeout_millis: float) -> MetricsData | None:
        """A snapshot for OTLP; the next scrape takes its own."""
        taken: list[MetricsData] = []
        self._exporting.taken = taken
        try:
            self.collect(timeout_millis=timeout_millis)
        finally:
            self._exporting.taken = None
        return taken[0] if taken else None


def _env_ms(name: str, default: int) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        log.warning("%s is not a number; using %d", name, default)
        value = default
    return (value if value > 0 else default) / 1000


class MetricExport:
    """Collects ``reader`` for ``exporter`` every export interval, on a daemon thread."""

    def __init__(self, reader: SharedMetricReader, exporter: MetricExporter) -> None:
        self.reader, self.exporter = reader, exporter
        self.interval_s = _env_ms(OTEL_METRIC_EXPORT_INTERVAL, 60_000)
        self.timeout_s = _env_ms(OTEL_METRIC_EXPORT_TIMEOUT, 30_000)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Named like the SDK's reader thread, which it replaces (tests look for Otel* threads).
        self._thread = threading.Thread(target=self._run, name="OtelMetricExport", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.export()

    def export(self, timeout_s: float | None = None) -> None:
        timeout_ms = (self.timeout_s if timeout_s is None else timeout_s) * 1000
        with self._lock:  # the final export at shutdown must not overlap a periodic one
            try:
                data = self.reader.collect_for_export(timeout_ms)
                if data is not None:
                    self.exporter.export(data, timeout_millis=timeout_ms)
            except Exception:  # a metrics bug must not stop metric export for good
                log.exception("exporting metrics failed")

    def shutdown(self, timeout_s: float) -> None:
        """Stop the thread, export once more, and shut the exporter down."""
        self._stop.set()
        self._thread.join(timeout_s)
        self.export(timeout_s)
        self.exporter.shutdown(timeout_millis=timeout_s * 1000)
