"""OpenTelemetry-first telemetry: spans, metrics, rolling statistics, reports and alerts."""
