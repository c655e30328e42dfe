"""``llm-sidecar demo``: the sidecar in front of the simulator, a mixed workload, a report.

Everything runs in this process on loopback ports: no network, no Redis, no keys.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
from aiohttp import web
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from sidecar.config import Settings, settings_from_dict
from sidecar.server import create_app
from sidecar.simulator import Faults, Simulator, SimulatorConfig
from sidecar.telemetry.render import print_report, table_console

USERS = ("alice", "bob", "carol", "dave", "erin")
INTENT_PROMPTS = ("track my order", "cancel my order", "talk to a human", "reset my password")


@dataclass(frozen=True, slots=True)
class Call:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(slots=True)
class Outcome:
    operation: str
    status: int
    latency_s: float
    code: str | None
    overhead_ms: float | None


def workload(count: int, seed: int = 3) -> list[Call]:
    """A seeded mix of chat, streaming, evaluation, intent, embeddings, images and responses."""
    rng = random.Random(seed)
    mix = [
        (0.50, _chat),
        (0.15, _chat_stream),
        (0.10, _evaluation),
        (0.08, _intent),
        (0.08, _embedding),
        (0.05, _responses),
        (0.04, _image),
    ]
    weights = [weight for weight, _ in mix]
    makers = [maker for _, maker in mix]
    calls = []
    for _ in range(count):
        maker = rng.choices(makers, weights)[0]
        user = rng.choice(USERS)
        calls.append(maker(rng, user))
    return calls


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _chat(rng: random.Random, user: str) -> Call:
    model = rng.choice(("gpt-4o", "gpt-4o-mini", "gpt-4o-mini"))
    body = {"model": model, "messages": _messages(f"question {rng.randrange(10_000)}")}
    return Call("chat/completions", body, {"X-Sidecar-User": user})


def _chat_stream(rng: random.Random, user: str) -> Call:
    call = _chat(rng, user)
    return Call(call.path, {**call.body, "stream": True}, call.headers)


def _evaluation(rng: random.Random, user: str) -> Call:
    body = {"model": "gpt-4o", "messages": _messages(f"grade answer {rng.randrange(500)}")}
    return Call(
        "chat/completions", body, {"X-Sidecar-User": user, "X-Sidecar-Operation": "evaluation"}
    )


def _intent(rng: random.Random, user: str) -> Call:
    body = {"model": "gpt-4o-mini", "messages": _messages(rng.choice(INTENT_PROMPTS))}
    return Call("chat/completions", body, {"X-Sidecar-User": user, "X-Sidecar-Operation": "intent"})


def _embedding(rng: random.Random, user: str) -> Call:
    body = {"model": "text-embedding-3-small", "input": f"document {rng.randrange(100_000)}"}
    return Call("embeddings", body, {"X-Sidecar-User": user})


def _responses(rng: random.Random, user: str) -> Call:
    body = {"model": "gpt-4o", "input": f"summarise ticket {rng.randrange(1000)}"}
    return Call("responses", body, {"X-Sidecar-User": user})


def _image(rng: random.Random, user: str) -> Call:
    quality = rng.choice(("standard", "hd"))
    body = {"model": "dall-e-3", "prompt": "a lighthouse at dusk", "quality": quality}
    return Call("images/generations", body, {"X-Sidecar-User": user})


def demo_simulator() -> Simulator:
    faults = Faults(rate_429=0.02, rate_503=0.03, retry_after_s=0.05)
    return Simulator(
        SimulatorConfig(seed=5, latency_ms=40, latency_sigma=0.6, chunk_delay_ms=2, faults=faults)
    )


def demo_settings(upstream_url: str, directory: str) -> Settings:
    return settings_from_dict(
        {
            "providers": {"simulator": {"base_url": upstream_url, "api_key_env": None}},
            # A file (in a temporary directory), as in production: an in-memory database can
            # only be reached through aiosqlite's thread, which is much slower to commit to.
            "database_url": f"sqlite:///{directory}/usage.db",
            # Thresholds scaled to the simulator's 40 ms median, so slow operations show up;
            # limits scaled to a workload that sends in seconds what apps send in minutes.
            "operations": {
                "chat": {"slow_ms": 250, "rate_limit": {"requests": 300, "per_s": 60}},
                "evaluation": {"slow_ms": 120, "rate_limit": {"requests": 200, "per_s": 60}},
                "image-generation": {"rate_limit": {"requests": 60, "per_s": 60}},
            },
        }
    )


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve an app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def run_demo(*, requests: int = 2000, concurrency: int = 32) -> int:
    console = table_console()
    sim = demo_simulator()
    with tempfile.TemporaryDirectory(prefix="sidecar-demo-") as directory:
        async with serving(sim.app()) as upstream_url:
            settings = demo_settings(f"{upstream_url}/v1", directory)
            async with serving(create_app(settings)) as sidecar_url:
                console.print(
                    f"[bold]llm-sidecar demo[/]: sidecar {sidecar_url}/v1 → simulated upstream "
                    f"{upstream_url}/v1 (40 ms median latency, 2% 429s, 3% 503s)"
                )
                started = time.perf_counter()
                outcomes = await drive(
                    f"{sidecar_url}/v1", workload(requests), concurrency, console
                )
                elapsed = time.perf_counter() - started
                report = await fetch_report(sidecar_url, settings)
    print_report(report, console)
    print_client_view(console, outcomes, elapsed)
    return 0


async def fetch_report(sidecar_url: str, settings: Settings) -> dict[str, Any]:
    # The report is an admin endpoint: with the admin token variable set in this shell, the
    # demo's own sidecar wants it too.
    token = settings.admin.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sidecar_url}/sidecar/report", headers=headers) as response,
    ):
        response.raise_for_status()
        report: dict[str, Any] = await response.json()
    return report


async def drive(
    base_url: str, calls: list[Call], concurrency: int, console: Console
) -> list[Outcome]:
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    outcomes: list[Outcome] = []
    columns = (*Progress.get_default_columns()[:2], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("requests", total=len(calls))
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(base_url=base_url + "/", connector=connector) as http:

            async def worker() -> None:
                while not queue.empty():
                    outcomes.append(await send(http, queue.get_nowait()))
                    progress.advance(task)

            async with asyncio.TaskGroup() as group:
                for _ in range(concurrency):
                    group.create_task(worker())
    return outcomes


async def send(http: aiohttp.ClientSession, call: Call) -> Outcome:
    operation = call.headers.get("X-Sidecar-Operation") or _operation(call.path)
    started = time.perf_counter()
    async with http.post(call.path, json=call.body, headers=call.headers) as resp:
        payload = await resp.read()
        error_code = _error_code(resp.status, payload)
        overhead = resp.headers.get("X-Sidecar-Overhead-Ms")
    return Outcome(
        operation,
        resp.status,
        time.perf_counter() - started,
        error_code,
        float(overhead) if overhead else None,
    )


def _operation(path: str) -> str:
    return {"embeddings": "embedding", "images/generations": "image-generation"}.get(path, "chat")


def _error_code(status: int, payload: bytes) -> str | None:
    if status < 400:
        # A stream that failed midway still answered 200; its error is in the last event.
        return "STREAM_ERROR" if b'data: {"error"' in payload[-4096:] else None
    try:
        return str(orjson.loads(payload)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{status}"


def print_client_view(console: Console, outcomes: list[Outcome], elapsed_s: float) -> None:
    failed = sum(outcome.code is not None for outcome in outcomes)
    overheads = np.array([o.overhead_ms for o in outcomes if o.overhead_ms is not None])
    line = (
        f"client view: {len(outcomes)} requests in {elapsed_s:.1f} s "
        f"({len(outcomes) / elapsed_s:.0f}/s), {failed} failed"
    )
    if overheads.size:
        p50, p99 = np.percentile(overheads, [50, 99])
        line += f"; sidecar overhead (X-Sidecar-Overhead-Ms) p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    console.print(line)
