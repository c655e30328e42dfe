"""Benchmarks for llm-sidecar (run them as scripts; see bench/README.md)."""
