"""Demo traffic for the compose stack: the demo's mixed workload, in rounds, at a running sidecar.

Chat (some streamed), evaluation, intent, embeddings, responses and images from five users, so
every dashboard panel has data: errors and fallbacks come from the simulator's random 429/5xx,
cache hits from repeated intents, slow operations from its latency spread.

    python deploy/traffic.py --url http://127.0.0.1:8787/v1 --per-round 200 --pause-s 5
"""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console

from sidecar.demo import drive, workload


async def run(url: str, *, per_round: int, pause_s: float, concurrency: int, rounds: int) -> None:
    console = Console()
    done = 0
    while rounds <= 0 or done < rounds:
        done += 1
        # A new seed each round: new prompts (cache misses) beside the repeated intents (hits).
        outcomes = await drive(url, workload(per_round, seed=done), concurrency, console)
        failed = sum(outcome.code is not None for outcome in outcomes)
        console.print(f"round {done}: {len(outcomes)} requests, {failed} answered with an error")
        await asyncio.sleep(pause_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8787/v1", help="the sidecar's /v1 URL")
    parser.add_argument("--per-round", type=int, default=200, help="requests per round")
    parser.add_argument("--pause-s", type=float, default=5.0, help="pause between rounds")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: never)")
    args = parser.parse_args()
    asyncio.run(
        run(
            args.url,
            per_round=args.per_round,
            pause_s=args.pause_s,
            concurrency=args.concurrency,
            rounds=args.rounds,
        )
    )


if __name__ == "__main__":
    main()
