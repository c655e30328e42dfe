"""What resilience buys under a failing upstream.

The simulator fails 20% of calls with 503 and 5% with 429 + Retry-After (0.2 s), with a 30 ms
median latency. The same seeded workload runs once straight at the simulator and once through
the sidecar, and the figures are:

- client-visible success rate, direct vs through the sidecar;
- p50/p95 latency of successful requests, and the p95 the sidecar adds (retries cost time);
- upstream calls per client request (the price of those retries, capped by the retry budget).

Run: ``python bench/resilience.py [--requests 2000] [--concurrency 16] [--json PATH]``.
Everything runs on 127.0.0.1, in this process; the run is bounded by the request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import numpy as np
import uvloop
from rich.console import Console
from rich.table import Table

from sidecar.config import settings_from_dict
from sidecar.demo import serving
from sidecar.server import create_app
from sidecar.simulator import Faults, Simulator, SimulatorConfig

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "How are you?"}]}


@dataclass
class Run:
    requests: int
    succeeded: int
    upstream_calls: int
    p50_ms: float
    p95_ms: float
    seconds: float

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests

    @property
    def calls_per_request(self) -> float:
        return self.upstream_calls / self.requests


def failing_simulator(seed: int) -> Simulator:
    faults = Faults(rate_503=0.20, rate_429=0.05, retry_after_s=0.2)
    return Simulator(SimulatorConfig(seed=seed, latency_ms=30, latency_sigma=0.4, faults=faults))


async def drive(url: str, requests: int, concurrency: int) -> tuple[list[float], int]:
    """Send ``requests`` chat completions with bounded concurrency; latencies of the successes."""
    latencies: list[float] = []
    failed = 0
    remaining = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            nonlocal failed
            for _ in remaining:
                started = time.perf_counter()
                try:
                    async with http.post(f"{url}/chat/completions", json=BODY) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False  # a dropped connection is a failure the app would see
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failed


async def measure(through_sidecar: bool, requests: int, concurrency: int, seed: int) -> Run:
    sim = failing_simulator(seed)
    async with serving(sim.app()) as upstream:
        if through_sidecar:
            settings = settings_from_dict(
                {"providers": {"sim": {"base_url": f"{upstream}/v1", "api_key_env": None}}}
            )
            async with serving(create_app(settings)) as sidecar:
                started = time.perf_counter()
                latencies, _ = await drive(f"{sidecar}/v1", requests, concurrency)
        else:
            started = time.perf_counter()
            latencies, _ = await drive(f"{upstream}/v1", requests, concurrency)
        seconds = time.perf_counter() - started
    p50, p95 = np.percentile(np.array(latencies) * 1000, [50, 95])
    return Run(requests, len(latencies), len(sim.seen), float(p50), float(p95), seconds)


def report(direct: Run, proxied: Run, console: Console) -> dict[str, object]:
    table = Table(title="20% 503 + 5% 429 (Retry-After 0.2 s) upstream, 30 ms median")
    for column in ("path", "success rate", "p50 ms", "p95 ms", "upstream calls / request"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, run in (("direct", direct), ("through sidecar", proxied)):
        table.add_row(
            name,
            f"{run.success_rate:.2%}",
            f"{run.p50_ms:.1f}",
            f"{run.p95_ms:.1f}",
            f"{run.calls_per_request:.3f}",
        )
    console.print(table)
    added_p95 = proxied.p95_ms - direct.p95_ms
    console.print(f"added p95 latency: {added_p95:.1f} ms")
    return {
        "direct": {**asdict(direct), "success_rate": direct.success_rate},
        "sidecar": {
            **asdict(proxied),
            "success_rate": proxied.success_rate,
            "calls_per_request": proxied.calls_per_request,
        },
        "added_p95_ms": added_p95,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=Path("bench/results/resilience.json"))
    args = parser.parse_args()
    direct = await measure(False, args.requests, args.concurrency, args.seed)
    proxied = await measure(True, args.requests, args.concurrency, args.seed)
    result = report(direct, proxied, Console())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    uvloop.run(main())
