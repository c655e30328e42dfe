"""The response cache on a workload with repeats: hit rate, upstream calls saved, hit latency.

Starts the simulator and a sidecar in this process (loopback), then sends ``--requests``
evaluation requests from ``--users`` users where a share ``--repeat`` of them repeats an
earlier question of the same user (the cache's default scope is the user). Prints the hit rate
the sidecar reported (``X-Sidecar-Cache``), the upstream calls the simulator saw, and the
end-to-end latency of hits and misses (p50/p99, ms).

Run: ``python -m bench.cache [--requests 2000] [--repeat 0.4] [--redis redis://...]``.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from typing import Any

import aiohttp
import numpy as np
import uvloop
from aiohttp.test_utils import TestServer

from sidecar.config import settings_from_dict
from sidecar.server import create_app
from sidecar.simulator import Simulator, SimulatorConfig


def workload(count: int, users: int, repeat: float, seed: int = 5) -> list[tuple[str, str]]:
    """(user, question) pairs: a share ``repeat`` asks again what that user asked before."""
    rng = random.Random(seed)
    asked: dict[str, list[str]] = {}
    calls = []
    for i in range(count):
        user = f"user-{rng.randrange(users)}"
        earlier = asked.setdefault(user, [])
        if earlier and rng.random() < repeat:
            question = rng.choice(earlier)
        else:
            question = f"grade answer {i}"
            earlier.append(question)
        calls.append((user, question))
    return calls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--repeat", type=float, default=0.4, help="share of repeated questions")
    parser.add_argument("--redis", default=None, help="a Redis URL (default: in-process)")
    args = parser.parse_args()
    sim = Simulator(SimulatorConfig(seed=3, latency_ms=5))
    upstream = TestServer(sim.app())
    await upstream.start_server()
    raw: dict[str, Any] = {
        "providers": {"sim": {"base_url": str(upstream.make_url("/v1")), "api_key_env": None}},
        "database_url": f"sqlite:///{tempfile.mkdtemp(prefix='sidecar-bench-')}/usage.db",
        "operations": {"evaluation": {"rate_limit": None, "cache_ttl_s": 3600}},
        "backends": {"redis_prefix": f"sidecar-bench-cache:{os.getpid()}:"},
    }
    if args.redis:
        raw["redis_url"] = args.redis
    sidecar = TestServer(create_app(settings_from_dict(raw)))
    await sidecar.start_server()
    latency: dict[str, list[float]] = {"HIT": [], "MISS": []}
    try:
        async with aiohttp.ClientSession() as http:
            for user, question in workload(args.requests, args.users, args.repeat):
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
                headers = {"X-Sidecar-User": user, "X-Sidecar-Operation": "evaluation"}
                started = time.perf_counter()
                async with http.post(
                    sidecar.make_url("/v1/chat/completions"), json=body, headers=headers
                ) as resp:
                    await resp.read()
                latency.setdefault(resp.headers["X-Sidecar-Cache"], []).append(
                    (time.perf_counter() - started) * 1000
                )
        if args.redis:
            async with (
                aiohttp.ClientSession() as http,
                http.delete(sidecar.make_url("/sidecar/cache?operation=evaluation")) as resp,
            ):
                await resp.read()
    finally:
        await sidecar.close()
        await upstream.close()
    hits, misses = len(latency["HIT"]), len(latency["MISS"])
    upstream_calls = sum(1 for seen in sim.seen if seen.model)
    print(f"requests {args.requests}, repeated questions {args.repeat:.0%}, users {args.users}")
    print(f"hit rate {hits / (hits + misses):.1%} ({hits} hits, {misses} misses)")
    print(f"upstream calls {upstream_calls} (saved {args.requests - upstream_calls})")
    for kind in ("HIT", "MISS"):
        values = np.array(latency[kind])
        if values.size:
            p50, p99 = np.percentile(values, [50, 99])
            print(f"{kind.lower():>4} latency p50 {p50:.3f} ms, p99 {p99:.3f} ms")


if __name__ == "__main__":
    uvloop.run(main())
