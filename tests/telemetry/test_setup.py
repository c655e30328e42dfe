"""SDK set-up: which OTEL_* variables turn export on, and the export-failure log filter."""

from __future__ import annotations

import logging

import pytest

from sidecar.telemetry.setup import ExportWarnings, otlp_protocol


@pytest.mark.parametrize(
    ("env", "traces", "metrics"),
    [
        ({}, None, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http/protobuf", "http/protobuf"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "grpc",
            "grpc",
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "http/protobuf", None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_METRICS_EXPORTER": "none"},
            "http/protobuf",
            None,
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}, None, None),
    ],
)
def test_export_is_configured_only_by_otel_variables(
    env: dict[str, str], traces: str | None, metrics: str | None
) -> None:
    """An endpoint turns OTLP on; the protocol, per-signal exporters and the kill switch apply."""
    assert otlp_protocol("traces", env) == traces
    assert otlp_protocol("metrics", env) == metrics


def record(name: str, level: int = logging.WARNING, msg: str = "boom") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_export_failures_log_once_then_stay_quiet() -> None:
    """The first export failure becomes one clear warning; repeats are silenced."""
    warnings = ExportWarnings(quiet_s=300)
    first = record("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    assert warnings.filter(first)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in first.getMessage()
    assert "boom" in first.getMessage()
    assert not warnings.filter(record("opentelemetry.sdk._shared_internal", msg="Queue full"))
    assert not warnings.filter(record("opentelemetry.exporter.otlp.proto.grpc.exporter"))


def test_other_warnings_pass_untouched() -> None:
    """Warnings unrelated to export, and our own logs, are never swallowed or rewritten."""
    warnings = ExportWarnings(quiet_s=300)
    assert warnings.filter(record("opentelemetry.exporter.x"))
    other = record("opentelemetry.attributes", msg="Invalid type")
    assert warnings.filter(other)
    assert other.getMessage() == "Invalid type"
    assert warnings.filter(record("sidecar.server"))
