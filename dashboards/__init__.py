"""Grafana dashboards for llm-sidecar as code: ``python -m dashboards.build`` writes the JSON."""
