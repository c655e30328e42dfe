"""What telemetry costs per request: the pipeline with it off, on, and on with spans exported.

Network time would drown a difference of microseconds, so this drives the real request pipeline
in-process over a transport that answers a canned chat completion at once, and times each
request with ``perf_counter_ns``. Three configurations, interleaved in rounds to cancel drift:

- ``off``: ``telemetry.enabled: false`` (no spans, metrics or statistics);
- ``on``: the default with no OTLP endpoint (metrics, statistics, unsampled spans);
- ``on+spans``: every span recorded and handed to an in-process SDK batch processor (its
  exporter discards them): what span processors added in process cost;
- ``on+otlp``: what ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` turns on: every span recorded as a
  compact record and shipped to the export process (its sends fail: nothing listens there;
  that process's own CPU is not counted here, only what the request path pays).

Two figures per configuration:

- request path: each request timed alone, yielding to the loop between requests as a server
  does, so the metric batch's background flush runs between them (p50/p95 added over ``off``);
- amortized: wall time of a whole run of requests plus the final metric flush, divided by the
  request count: the CPU each request really costs, deferred metric work included.

Run: ``python -m bench.telemetry [--requests 20000] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from time import perf_counter_ns

import orjson
import uvloop
from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from rich.console import Console

from bench.harness.report import microseconds_table
from bench.harness.results import request_path_us
from sidecar.config import settings_from_dict
from sidecar.exchange import Exchange
from sidecar.pipeline import build_pipeline
from sidecar.runtime import Overrides, Runtime
from sidecar.telemetry.setup import OtelProviders
from sidecar.upstream.transport import UpstreamRequest

REQUEST = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
)
HEADERS = CIMultiDictProxy(
    CIMultiDict({"Content-Type": "application/json", "X-Sidecar-User": "u1"})
)


class CannedResponse:
    status = 200
    headers: Mapping[str, str] = {"Content-Type": "application/json"}

    async def read(self) -> bytes:
        return ANSWER

    async def events(self) -> AsyncGenerator[bytes]:
        yield ANSWER

    async def chunks(self) -> AsyncGenerator[bytes]:
        yield ANSWER

    def close(self) -> None:
        pass


class CannedTransport:
    """Answers every request at once: the benchmark measures the sidecar, not a network."""

    async def send(self, request: UpstreamRequest) -> CannedResponse:
        return CannedResponse()

    async def close(self) -> None:
        pass


class DiscardExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


async def read_body(limit: int) -> bytes:
    return REQUEST


async def runtime(mode: str) -> Runtime:
    settings = settings_from_dict(
        {
            "providers": {"sim": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None}},
            "telemetry": {"enabled": mode != "off"},
            "database_url": f"sqlite:///{tempfile.mkdtemp(prefix='sidecar-bench-')}/usage.db",
            # What is measured is telemetry: the rate limit would refuse the repeated requests.
            "operations": {"chat": {"rate_limit": None}},
        }
    )
    providers = OtelProviders(otlp=False)
    if mode == "on+spans":
        providers = OtelProviders(otlp=False, span_processor=BatchSpanProcessor(DiscardExporter()))
    elif mode == "on+otlp":  # the export process is started with this environment
        os.environ[TRACES_ENDPOINT] = "http://127.0.0.1:9/v1/traces"
        try:
            providers = OtelProviders()
        finally:
            del os.environ[TRACES_ENDPOINT]
    return await Runtime.open(settings, Overrides(transport=CannedTransport(), otel=providers))


async def time_requests(rt: Runtime, count: int) -> list[int]:
    handle = build_pipeline(rt).handle
    timings = []
    for _ in range(count):
        ex = Exchange("req", "POST", "chat/completions", "", HEADERS, read_body)
        started = perf_counter_ns()
        reply = await handle(ex)
        timings.append(perf_counter_ns() - started)
        if reply.status != 200:
            raise RuntimeError(f"the pipeline answered {reply.status}: {reply.body[:200]!r}")
        await asyncio.sleep(0)  # a server's loop runs other tasks (the metric flush) in between
    return timings


async def amortized_us(rt: Runtime, count: int) -> float:
    """Microseconds per request for a whole run, including handing its metrics to the SDK."""
    handle = build_pipeline(rt).handle
    started = perf_counter_ns()
    for _ in range(count):
        await handle(Exchange("req", "POST", "chat/completions", "", HEADERS, read_body))
    rt.telemetry.batch.flush()
    return (perf_counter_ns() - started) / count / 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("bench/results/telemetry.json"))
    args = parser.parse_args()
    modes = ("off", "on", "on+spans", "on+otlp")
    runtimes = {mode: await runtime(mode) for mode in modes}
    for rt in runtimes.values():
        await time_requests(rt, 500)  # warm-up
    timings: dict[str, list[int]] = {mode: [] for mode in modes}
    per_round = max(1, args.requests // args.rounds)
    for _ in range(args.rounds):
        for mode in modes:
            timings[mode] += await time_requests(runtimes[mode], per_round)
    amortized = {mode: await amortized_us(runtimes[mode], args.requests // 4) for mode in modes}
    for rt in runtimes.values():
        await rt.close()
    result = summarise(timings, amortized)
    show(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


def summarise(
    timings: dict[str, list[int]], amortized: dict[str, float]
) -> dict[str, dict[str, float]]:
    result = request_path_us(timings)
    for mode, value in amortized.items():
        result[mode]["amortized_us"] = round(value, 1)
        result[mode]["added_amortized_us"] = round(value - amortized["off"], 1)
    return result


def show(result: dict[str, dict[str, float]]) -> None:
    columns = {
        "p50": "p50_us",
        "p95": "p95_us",
        "p99": "p99_us",
        "added p50": "added_p50_us",
        "added p95": "added_p95_us",
        "amortized": "amortized_us",
        "added": "added_amortized_us",
    }
    Console().print(
        microseconds_table(
            "Pipeline time per request, in-process (µs; amortized incl. metric flush)",
            "telemetry",
            result,
            columns,
        )
    )


if __name__ == "__main__":
    uvloop.run(main())
