"""llm-sidecar: an OpenTelemetry-first production-readiness sidecar for LLM calls."""

__version__ = "0.1.0"
