"""The ``llm-sidecar`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

import uvloop
from aiohttp import web

from sidecar.config import ConfigError, Settings, load_settings
from sidecar.demo import run_demo
from sidecar.server import create_app
from sidecar.simulator import Faults, SimulatorConfig, run_simulator


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        result: int = args.run(args)
    except ConfigError as exc:
        print(f"llm-sidecar: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-sidecar", description="OpenAI-compatible production-readiness sidecar."
    )
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="run the sidecar")
    serve.add_argument("--config", help="YAML config file (default: embedded defaults)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8787)")
    serve.set_defaults(run=_serve)

    demo = sub.add_parser("demo", help="run a self-contained demo against a simulated upstream")
    demo.add_argument("--requests", type=int, default=2000, help="workload size (default 2000)")
    demo.add_argument("--concurrency", type=int, default=32)
    demo.set_defaults(run=_demo)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(run=_check_config)

    mock = sub.add_parser("mock-upstream", help="run the simulated OpenAI-compatible upstream")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9999)
    mock.add_argument("--latency-ms", type=float, default=0.0, help="median latency")
    mock.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between SSE chunks")
    mock.add_argument("--seed", type=int, default=7)
    mock.add_argument("--rate-429", type=float, default=0.0, help="share of 429 answers (0..1)")
    mock.add_argument("--rate-503", type=float, default=0.0, help="share of 503 answers (0..1)")
    mock.add_argument("--rate-500", type=float, default=0.0, help="share of 500 answers (0..1)")
    mock.set_defaults(run=_mock_upstream)
    return parser


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop: the proxy's hot path is the event loop."""
    return uvloop.run(main)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    host = args.host or settings.listen.host
    port = args.port if args.port is not None else settings.listen.port
    return run_async(serve(settings, host, port))


async def serve(settings: Settings, host: str, port: int) -> int:
    runner = web.AppRunner(create_app(settings), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    logging.getLogger("sidecar").info("llm-sidecar listening on http://%s:%d/v1", host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    providers = ", ".join(f"{n} ({p.base_url})" for n, p in settings.providers.items())
    print(f"{args.file}: OK")
    print(f"  providers:  {providers}")
    print(f"  operations: {', '.join(settings.operations)}")
    print(f"  storage:    redis={settings.redis_url or 'in-process'} usage={settings.database_url}")
    return 0


def _mock_upstream(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        seed=args.seed,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        faults=Faults(rate_429=args.rate_429, rate_500=args.rate_500, rate_503=args.rate_503),
    )
    print(f"simulated upstream on http://{args.host}:{args.port}/v1", flush=True)

    async def _run() -> int:
        await run_simulator(args.host, args.port, config)
        return 0

    return run_async(_run())


def _demo(args: argparse.Namespace) -> int:
    return run_async(run_demo(requests=args.requests, concurrency=args.concurrency))
