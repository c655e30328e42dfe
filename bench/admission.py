"""What rate limiting and the response cache cost per request, in process.

Like ``bench/telemetry.py``: the real pipeline over a transport that answers at once, each
request timed with ``perf_counter_ns``, configurations interleaved in rounds. Telemetry is off
in every configuration, so the difference is the two stages alone:

- ``off``: no rate limit, no cache (the pipeline before these stages);
- ``memory``: rate limit (requests and tokens) and a cache lookup that misses (every body is
  new), with the in-process backends;
- ``redis``: the same against Redis (one round trip for the limit script and the lookup);
- ``redis hit``: the same request over and over, answered from the Redis cache.

Figures per configuration: the request path (wall p50/p95/p99, added over ``off``; against
Redis this includes waiting for it), and per request over a whole run, work after the reply
(cache writes, token settlement) included: wall time and this process's CPU time — the CPU
figure is the one the budget speaks of.

Run: ``python -m bench.admission [--requests 5000] [--redis redis://127.0.0.1:6379/0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter_ns, process_time_ns
from typing import Any

import orjson
import redis.asyncio as aioredis
import uvloop
from multidict import CIMultiDict, CIMultiDictProxy
from rich.console import Console

from bench.harness.report import microseconds_table
from bench.harness.results import request_path_us
from bench.telemetry import HEADERS, CannedTransport
from sidecar.config import settings_from_dict
from sidecar.exchange import Exchange
from sidecar.pipeline import Next, build_pipeline
from sidecar.runtime import Overrides, Runtime
from sidecar.telemetry.setup import OtelProviders

# Limits a busy app would set, over many users, so each user's window stays as small as in
# production (a single user with a huge limit would make the sliding log, not the stage, slow).
USERS = 2000
LIMITED: dict[str, Any] = {
    "rate_limit": {"requests": 600, "per_s": 60, "tokens": 10**7},
    "cache_ttl_s": 3600,
    "cache_scope": "global",  # the hit mode's users share one answer
    "fallbacks": [],
}
OFF: dict[str, Any] = {"rate_limit": None, "cache_ttl_s": 0, "fallbacks": []}


async def runtime(mode: str, redis_url: str, prefix: str) -> Runtime:
    raw: dict[str, Any] = {
        "providers": {"sim": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None}},
        "telemetry": {"enabled": False},
        "database_url": f"sqlite:///{tempfile.mkdtemp(prefix='sidecar-bench-')}/usage.db",
        "operations": {"chat": OFF if mode == "off" else LIMITED},
        "backends": {"redis_prefix": prefix},
    }
    if mode.startswith("redis"):
        raw["redis_url"] = redis_url
    otel = OtelProviders(otlp=False)
    return await Runtime.open(
        settings_from_dict(raw), Overrides(transport=CannedTransport(), otel=otel)
    )


def bodies(mode: str) -> Iterator[tuple[int, int]]:
    """(user, question) per request: a new question each time (every lookup misses), or one
    question again and again (hits); users take turns either way."""
    hits = mode.endswith("hit")
    return ((n, 0 if hits else n) for n in itertools.count(1))


USER_HEADERS = [
    CIMultiDictProxy(CIMultiDict({**HEADERS, "X-Sidecar-User": f"user-{i}"})) for i in range(USERS)
]


def exchange(numbers: tuple[int, int]) -> Exchange:
    user, question = numbers
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {question}"}]}
    )

    async def read_body(limit: int) -> bytes:
        return body

    return Exchange("req", "POST", "chat/completions", "", USER_HEADERS[user % USERS], read_body)


async def time_requests(handle: Next, numbers: Any, count: int) -> list[int]:
    timings = []
    for _ in range(count):
        ex = exchange(next(numbers))
        started = perf_counter_ns()
        reply = await handle(ex)
        timings.append(perf_counter_ns() - started)
        await reply.aclose()
        if reply.status != 200:
            raise RuntimeError(f"the pipeline answered {reply.status}: {reply.body[:200]!r}")
        await asyncio.sleep(0)  # as a server's loop would: background work runs in between
    return timings


async def amortized_us(rt: Runtime, handle: Next, numbers: Any, count: int) -> tuple[float, float]:
    """Wall and CPU microseconds per request for a run, work after the reply included. Wall
    time includes waiting for Redis; CPU time is this process's only (the budget's figure)."""
    started, cpu = perf_counter_ns(), process_time_ns()
    for _ in range(count):
        reply = await handle(exchange(next(numbers)))
        await reply.aclose()
    await rt.background.drain(30)  # the cache writes and settlements of this run
    rt.background.start()
    return (
        (perf_counter_ns() - started) / count / 1000,
        (process_time_ns() - cpu) / count / 1000,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="timed requests per mode")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", type=Path, default=Path("bench/results/admission.json"))
    args = parser.parse_args()
    prefix = f"sidecar-bench:{os.getpid()}:"
    modes = ("off", "memory", "redis", "redis hit")
    runtimes = {mode: await runtime(mode, args.redis, prefix) for mode in modes}
    handles = {mode: build_pipeline(rt).handle for mode, rt in runtimes.items()}
    numbers = {mode: bodies(mode) for mode in modes}
    try:
        for mode in modes:
            await time_requests(handles[mode], numbers[mode], 300)  # warm-up
        timings: dict[str, list[int]] = {mode: [] for mode in modes}
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for mode in modes:
                timings[mode] += await time_requests(handles[mode], numbers[mode], per_round)
        amortized = {
            mode: await amortized_us(runtimes[mode], handles[mode], numbers[mode], per_round)
            for mode in modes
        }
    finally:
        for rt in runtimes.values():
            await rt.close()
        await clean_redis(args.redis, prefix)
    result = summarise(timings, amortized)
    show(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


async def clean_redis(url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` (what a benchmark wrote)."""
    client = aioredis.from_url(url)
    try:
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            await client.unlink(key)
    finally:
        await client.aclose()


def summarise(
    timings: dict[str, list[int]], amortized: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    result = request_path_us(timings)
    for mode, (wall, cpu) in amortized.items():
        result[mode]["amortized_us"] = round(wall, 1)
        result[mode]["cpu_us"] = round(cpu, 1)
        result[mode]["added_cpu_us"] = round(cpu - amortized["off"][1], 1)
    return result


def show(result: dict[str, dict[str, float]]) -> None:
    columns = {
        "p50": "p50_us",
        "p95": "p95_us",
        "p99": "p99_us",
        "added p50": "added_p50_us",
        "added p99": "added_p99_us",
        "wall": "amortized_us",
        "CPU": "cpu_us",
        "added CPU": "added_cpu_us",
    }
    Console().print(
        microseconds_table(
            "Rate limit + cache per request, in process (µs; telemetry off)",
            "mode",
            result,
            columns,
        )
    )


if __name__ == "__main__":
    uvloop.run(main())
