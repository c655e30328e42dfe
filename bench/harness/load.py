"""The load generator's closed-loop side: the requests, and the sequential, streaming and
max-throughput drivers (the open loop is in ``open_loop``).

Every request goes through one keep-alive aiohttp session and reads its body whole; "direct"
means to the simulator, "proxied" through the sidecar, with the same small chat body.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp

from bench.harness.meters import CpuMeter, settle
from bench.harness.report import err
from bench.harness.results import (
    OVERHEAD_HEADER,
    Added,
    Latency,
    SequentialResult,
    StreamingResult,
    ThroughputResult,
    ThroughputRun,
    median,
)

HEADERS = {"Content-Type": "application/json"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
CHAT_BODY = json.dumps(CHAT, separators=(",", ":")).encode()
STREAM_BODY = json.dumps({**CHAT, "stream": True}, separators=(",", ":")).encode()

REQUEST_TIMEOUT_S = 5.0  # per request; a longer wait is an error
STREAM_WARMUP = 20  # streams per target before the measured ones
MAX_THROUGHPUT_REQUESTS = 500_000

_FAILURES = (aiohttp.ClientError, OSError, TimeoutError)

T = TypeVar("T")


def make_session() -> aiohttp.ClientSession:
    """One keep-alive session for every request of the run, with nothing optional switched on."""
    connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


# The headers of the next request: the same for every request unless rotate_users() is called.
_headers: list[Iterator[dict[str, str]]] = [itertools.repeat(HEADERS)]


def rotate_users() -> None:
    """From now on every request comes from a new user (X-Sidecar-User), so per-user limits
    never refuse and per-user cache entries never hit: their cost, not their effect."""
    _headers[0] = ({**HEADERS, "X-Sidecar-User": f"user-{n}"} for n in itertools.count())


async def post(session: aiohttp.ClientSession, url: str) -> tuple[int, str | None]:
    """POST the chat body and read the whole answer: (status or 0 on failure, overhead header)."""
    try:
        async with session.post(url, data=CHAT_BODY, headers=next(_headers[0])) as resp:
            await resp.read()
            return resp.status, resp.headers.get(OVERHEAD_HEADER)
    except _FAILURES:
        return 0, None


async def timed_post(session: aiohttp.ClientSession, url: str) -> tuple[float, str | None] | None:
    """A chat request: (duration, overhead header) or None unless it answered 200."""
    start = time.perf_counter()
    status, overhead = await post(session, url)
    elapsed = time.perf_counter() - start
    return (elapsed, overhead) if status == 200 else None


async def post_stream(session: aiohttp.ClientSession, url: str) -> tuple[float, float] | None:
    """A streamed chat request: (time to first body bytes, time to end) or None on failure."""
    start = time.perf_counter()
    try:
        async with session.post(url, data=STREAM_BODY, headers=next(_headers[0])) as resp:
            first = await resp.content.readany()
            ttfc = time.perf_counter() - start
            await resp.content.read()
            if resp.status != 200 or not first:
                return None
            return ttfc, time.perf_counter() - start
    except _FAILURES:
        return None


@dataclass(frozen=True, slots=True)
class Targets:
    """The system under test: the same endpoint direct and through the sidecar."""

    direct: str  # chat completions URL on the simulator
    proxied: str  # the same through the sidecar
    processes: tuple[tuple[str, int], ...] = ()  # (name, pid) of the servers

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(pid for _, pid in self.processes)

    def pair(self, i: int) -> tuple[tuple[str, str], tuple[str, str]]:
        """ABBA order: direct first on even pairs, proxied first on odd ones (cancels drift)."""
        d, p = ("direct", self.direct), ("proxied", self.proxied)
        return (d, p) if i % 2 == 0 else (p, d)


# --- sequential and streaming: one request at a time, interleaved ----------------------------


@dataclass(slots=True)
class Interleaved(Generic[T]):
    """What ``interleaved`` collected, before it is turned into a section's figures."""

    done: int  # pairs sent after the warm-up
    samples: dict[str, list[T]]  # per target, of the successful requests
    errors: dict[str, int]
    sidecar_cpu_us: float | None  # the sidecar's CPU time / pairs


async def interleaved(
    session: aiohttp.ClientSession,
    targets: Targets,
    send: Callable[[aiohttp.ClientSession, str], Awaitable[T | None]],
    *,
    n: int,
    warmup: int,
    budget_s: float,
) -> Interleaved[T]:
    """``warmup`` then ``n`` pairs of ``send`` (None: failed) in ABBA order, within the budget."""
    deadline = time.perf_counter() + budget_s
    for i in range(warmup):
        if time.perf_counter() > deadline:
            break
        for _, url in targets.pair(i):
            await send(session, url)
    samples: dict[str, list[T]] = {"direct": [], "proxied": []}
    errors = {"direct": 0, "proxied": 0}
    done = 0
    meter = CpuMeter(targets.processes)
    while done < n and time.perf_counter() < deadline:
        for name, url in targets.pair(done):
            sample = await send(session, url)
            if sample is None:
                errors[name] += 1
                continue
            samples[name].append(sample)
        done += 1
    cpu = meter.per_request_us(done)
    return Interleaved(done, samples, errors, None if cpu is None else cpu.get("sidecar"))


async def sequential(
    session: aiohttp.ClientSession, targets: Targets, n: int, warmup: int, budget_s: float
) -> SequentialResult:
    run = await interleaved(session, targets, timed_post, n=n, warmup=warmup, budget_s=budget_s)
    direct = Latency.of([elapsed for elapsed, _ in run.samples["direct"]])
    proxied = Latency.of([elapsed for elapsed, _ in run.samples["proxied"]])
    reported = [
        float(overhead)
        for name in ("direct", "proxied")
        for _, overhead in run.samples[name]
        if overhead is not None
    ]
    return SequentialResult(
        requests_per_target=run.done,
        warmup=warmup,
        truncated=run.done < n,
        errors=run.errors,
        direct=direct,
        proxied=proxied,
        added=Added.between(direct, proxied),
        sidecar_overhead_ms_median=median(reported),
        sidecar_cpu_us_per_request=run.sidecar_cpu_us,
    )


async def streaming(
    session: aiohttp.ClientSession,
    targets: Targets,
    n: int,
    chunk_delay_ms: float,
    budget_s: float,
) -> StreamingResult:
    warmup = min(STREAM_WARMUP, n)
    run = await interleaved(session, targets, post_stream, n=n, warmup=warmup, budget_s=budget_s)
    ttfc = {name: Latency.of([t for t, _ in run.samples[name]]) for name in run.samples}
    total = {name: Latency.of([t for _, t in run.samples[name]]) for name in run.samples}
    return StreamingResult(
        requests_per_target=run.done,
        chunk_delay_ms=chunk_delay_ms,
        truncated=run.done < n,
        errors=run.errors,
        ttfc_direct=ttfc["direct"],
        ttfc_proxied=ttfc["proxied"],
        ttfc_added=Added.between(ttfc["direct"], ttfc["proxied"]),
        total_direct=total["direct"],
        total_proxied=total["proxied"],
        sidecar_cpu_us_per_request=run.sidecar_cpu_us,
    )


# --- max throughput: closed loop at a fixed concurrency ----------------------------------------


async def closed_loop(
    session: aiohttp.ClientSession, url: str, concurrency: int, duration_s: float
) -> tuple[list[float], int, float]:
    """``concurrency`` workers back to back for ``duration_s``: (latencies, errors, elapsed)."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    stop = start + duration_s

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop and len(latencies) + errors < MAX_THROUGHPUT_REQUESTS:
            sent = time.perf_counter()
            status, _ = await post(session, url)
            if status == 200:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


async def throughput_run(
    session: aiohttp.ClientSession, targets: Targets, name: str, concurrency: int, duration_s: float
) -> ThroughputRun:
    url = targets.direct if name == "direct" else targets.proxied
    await closed_loop(session, url, concurrency, min(1.0, duration_s / 4))  # warm-up, discarded
    meter = CpuMeter(targets.processes)
    latencies, errors, elapsed = await closed_loop(session, url, concurrency, duration_s)
    cpu = meter.per_request_us(len(latencies) + errors)
    return ThroughputRun(
        target=name,
        concurrency=concurrency,
        duration_s=duration_s,
        requests=len(latencies),
        errors=errors,
        rps=round(len(latencies) / elapsed, 1),
        latency_ms=Latency.of(latencies),
        cpu_us_per_request=cpu,
    )


async def throughput(
    session: aiohttp.ClientSession, targets: Targets, concurrency: int, duration_s: float
) -> ThroughputResult:
    err.print(f"  closed loop, concurrency {concurrency}, {duration_s:g} s each")
    direct = await throughput_run(session, targets, "direct", concurrency, duration_s)
    await settle(targets.pids)
    proxied = await throughput_run(session, targets, "proxied", concurrency, duration_s)
    ratio = round(proxied.rps / direct.rps, 3) if direct.rps else None
    return ThroughputResult(direct, proxied, ratio)
