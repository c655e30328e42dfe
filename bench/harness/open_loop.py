"""The open-loop driver: requests launched on a fixed schedule, whatever the completions.

A slow server cannot slow the generator down (no coordinated omission): every latency counts
from the request's *scheduled* start, and how late the generator launched it is kept apart as
the generator lag.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence

import aiohttp
import numpy as np

from bench.harness.load import Targets, post
from bench.harness.meters import CpuMeter, settle
from bench.harness.report import err
from bench.harness.results import Added, Latency, RatePair, RateRun, ms

DRAIN_S = 6.0  # how long an open-loop run waits for its stragglers
CHECK_EVERY_S = 0.25  # saturation checks
MAX_ERROR_SHARE = 0.05
MAX_P50_S = 2.0
MIN_ACHIEVED_SHARE = 0.95  # of the offered rate, checked after a run
WARMUP_S = 1.0  # unmeasured, at the run's rate, before each run


class OpenLoop:
    """Launch ``rate * duration`` requests on a fixed schedule; time each from its slot.

    The schedule starts with a short unmeasured warm-up at the same rate, so both keep-alive
    pools have grown to the rate's concurrency before the first measured request.
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, rate: float) -> None:
        self.session, self.url, self.rate = session, url, rate
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.errors = 0
        self.last_done = 0.0
        self.measure_from = 0.0  # slots before this are the warm-up
        self.warm_done = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def _fire(self, slot: float) -> None:
        lag = time.perf_counter() - slot
        status, _ = await post(self.session, self.url)
        if slot < self.measure_from:
            self.warm_done += 1
            return
        self.lags.append(lag)
        self.last_done = time.perf_counter()
        if status == 200:
            self.latencies.append(self.last_done - slot)
        else:
            self.errors += 1

    def _launch(self, slot: float) -> None:
        task = asyncio.get_running_loop().create_task(self._fire(slot))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def saturation(self) -> str | None:
        finished = len(self.latencies) + self.errors
        if finished >= 20 and self.errors > MAX_ERROR_SHARE * finished:
            return f"errors > {MAX_ERROR_SHARE:.0%}"
        # Little's law: more in flight than 2 s worth of arrivals means latencies beyond 2 s.
        if len(self.tasks) > max(self.rate * MAX_P50_S, 50):
            return f"backlog > {MAX_P50_S:g} s"
        recent = self.latencies[-200:]
        if len(recent) >= 20 and float(np.median(recent)) > MAX_P50_S:
            return f"p50 > {MAX_P50_S:g} s"
        return None

    async def _dispatch(self, total: int, t0: float, hard_stop: float) -> tuple[int, str | None]:
        """Launch every slot that is due, sleep until the next one; bounded by count and time."""
        sent, next_check = 0, t0 + CHECK_EVERY_S
        while sent < total:
            now = time.perf_counter()
            while sent < total and t0 + sent / self.rate <= now:
                self._launch(t0 + sent / self.rate)
                sent += 1
            if now >= next_check:
                next_check = now + CHECK_EVERY_S
                if reason := self.saturation():
                    return sent, reason
            if now > hard_stop:
                return sent, "generator behind"
            if sent < total:
                # uvloop timers have 1 ms resolution: round up rather than spin.
                wait_ms = math.ceil((t0 + sent / self.rate - time.perf_counter()) * 1000)
                await asyncio.sleep(max(wait_ms, 0) / 1000)
        return sent, None

    async def _drain(self) -> None:
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=DRAIN_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.errors += len(pending)

    async def run(
        self, target: str, duration_s: float, processes: Sequence[tuple[str, int]]
    ) -> RateRun:
        warm = round(self.rate * min(WARMUP_S, duration_s / 5))
        total = warm + max(1, round(self.rate * duration_s))
        meter = CpuMeter(processes)
        t0 = time.perf_counter() + 0.01
        self.measure_from = t0 + warm / self.rate
        sent, reason = await self._dispatch(total, t0, self.measure_from + duration_s + 2.0)
        await self._drain()
        latency = Latency.of(self.latencies)
        finished = len(self.latencies) + self.errors
        # The same limits as during the run, now over all of it.
        if reason is None and finished and self.errors > MAX_ERROR_SHARE * finished:
            reason = f"errors > {MAX_ERROR_SHARE:.0%}"
        if reason is None and latency.p50 is not None and latency.p50 > MAX_P50_S * 1000:
            reason = f"p50 > {MAX_P50_S:g} s"
        span = max(self.last_done - self.measure_from, 1e-9)
        achieved = len(self.latencies) / span
        if reason is None and achieved < MIN_ACHIEVED_SHARE * self.rate:
            reason = f"< {MIN_ACHIEVED_SHARE:.0%} of rate"
        lag_p99 = float(np.percentile(self.lags, 99)) if self.lags else None
        return RateRun(
            target=target,
            rate=self.rate,
            duration_s=duration_s,
            scheduled=total - warm,
            sent=max(0, sent - warm),
            ok=len(self.latencies),
            errors=self.errors,
            achieved_rps=round(achieved, 1),
            latency_ms=latency,
            gen_lag_p99_ms=None if lag_p99 is None else ms(lag_p99),
            cpu_us_per_request=meter.per_request_us(finished + self.warm_done),
            saturated=reason is not None,
            reason=reason,
        )


async def open_loop(
    session: aiohttp.ClientSession, targets: Targets, rates: Sequence[float], duration_s: float
) -> list[RatePair]:
    pairs = []
    for rate in rates:
        runs: dict[str, RateRun] = {}
        # Direct first: a saturated proxied run must not leave a backlog behind for the other.
        for name, url in (("direct", targets.direct), ("proxied", targets.proxied)):
            err.print(f"  open loop {rate:g} RPS {name} for {duration_s:g} s")
            loop = OpenLoop(session, url, rate)
            runs[name] = await loop.run(name, duration_s, targets.processes)
            await settle(targets.pids)
        direct, proxied = runs["direct"], runs["proxied"]
        pairs.append(
            RatePair(rate, direct, proxied, Added.between(direct.latency_ms, proxied.latency_ms))
        )
    return pairs
