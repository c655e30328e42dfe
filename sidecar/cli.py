"""The ``llm-sidecar`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import orjson
import uvloop
from aiohttp import web
from aiohttp.log import access_logger as aiohttp_access_logger

from sidecar import __version__
from sidecar.backends import Health
from sidecar.backends.redis import connect, ping, redacted
from sidecar.backends.usage import PostgresUsage, sqlite_path
from sidecar.config import Admin, ConfigError, Provider, Settings, load_settings
from sidecar.demo import run_demo
from sidecar.jobs import JobWorkers
from sidecar.pipeline import build_pipeline
from sidecar.runtime import Runtime
from sidecar.security.injection import InjectionDetector
from sidecar.security.redact_cli import redact_file
from sidecar.security.scan import scan_file
from sidecar.server import create_app
from sidecar.simulator import Faults, SimulatorConfig, run_simulator
from sidecar.telemetry.render import parse_report, print_report, print_usage, table_console
from sidecar.telemetry.setup import ExportWarnings

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8787"  # where `report` looks for a sidecar


class CannotListen(Exception):
    """The listen address cannot be bound; ``main`` says why in one line, never a traceback."""

    @classmethod
    def of(cls, host: str, port: int, exc: OSError) -> CannotListen:
        if exc.errno == errno.EADDRINUSE:
            return cls(f"{host}:{port} is already in use; stop the other process or pass --port")
        if isinstance(exc, socket.gaierror):
            return cls(f"cannot listen on {host}:{port}: unknown host; pass another --host")
        return cls(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, so a closed pipe is met inside the try, not at exit
    except BrokenPipeError:
        return _reader_went_away()
    return code


def _reader_went_away() -> int:
    """The reader of our output left (``llm-sidecar scan x.jsonl | head``): stop quietly, as
    Unix tools do, instead of a traceback. What is still buffered goes nowhere, so the
    interpreter's own flush at exit cannot fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(ExportWarnings())
    try:
        result: int = args.run(args)
    except ConfigError as exc:
        print(f"llm-sidecar: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except CannotListen as exc:
        print(f"llm-sidecar: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def share(text: str) -> float:
    """An argparse type: a probability, 0..1 (argparse turns the error into a usage line)."""
    value = _number(text)
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"must be between 0 and 1 (a share of requests), got {text}"
        )
    return value


def non_negative(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def sidecar_url(text: str) -> str:
    """An argparse type: the sidecar's base URL. Without a scheme http:// is meant: the sidecar
    listens on plain HTTP beside the app, and "127.0.0.1:8787" is what users type."""
    url = text.strip()
    if "://" not in url:
        url = "http://" + url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https") or not url.split("://", 1)[1].strip("/"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// or https:// URL (e.g. {DEFAULT_URL})"
        )
    return url


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option states its default: argparse's value, unless the text already says it
    (options whose default comes from the config file, where "None" would tell nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        return text if "default" in text else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-sidecar",
        description="OpenAI-compatible production-readiness sidecar.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="commands")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)

    config_help = "YAML config file (default: embedded defaults)"
    serve = command("serve", "run the sidecar")
    serve.add_argument("--config", help=config_help)
    serve.add_argument(
        "--host", help="listen address (default: listen.host of the config, 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, help="listen port (default: listen.port of the config, 8787)"
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (aiohttp access log)"
    )
    serve.set_defaults(run=_serve)

    worker = command("worker", "run only the async job workers (scale them separately)")
    worker.add_argument("--config", help=config_help + "; needs redis_url")
    worker.set_defaults(run=_worker)

    scan = command("scan", "run the prompt-attack checks over a JSONL file of {id, text} lines")
    scan.add_argument("file", help="JSONL input (- for stdin); one result line per input on stdout")
    scan.add_argument(
        "--threshold", type=float, help="score at which a text is flagged (default 0.5)"
    )
    scan.set_defaults(run=_scan)

    redact = command("redact", "redact secrets and personal data in a JSONL file of {id, text}")
    redact.add_argument(
        "file", help="JSONL input (- for stdin); one redacted line per input on stdout"
    )
    redact.set_defaults(run=_redact)

    demo = command("demo", "run a self-contained demo against a simulated upstream")
    demo.add_argument("--requests", type=int, default=2000, help="workload size")
    demo.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    demo.set_defaults(run=_demo)

    report = command("report", "print the live performance report of a sidecar")
    report.add_argument(
        "--url",
        default=DEFAULT_URL,
        type=sidecar_url,
        help="the sidecar's base URL, with or without the trailing /v1 (http:// if no scheme)",
    )
    report.add_argument(
        "--config",
        help="the sidecar's YAML config: its admin.token_env names the variable holding the "
        "admin token (default: embedded defaults, so $SIDECAR_ADMIN_TOKEN)",
    )
    report.add_argument("--json", action="store_true", help="print the raw JSON instead")
    report.set_defaults(run=_report)

    usage = command("usage", "print a user's cost report (by model, budget, advice)")
    usage.add_argument("--user", required=True, help="the user (X-Sidecar-User) to report on")
    usage.add_argument(
        "--period", choices=("day", "week", "month"), default="month", help="calendar period, UTC"
    )
    usage.add_argument(
        "--url",
        default=DEFAULT_URL,
        type=sidecar_url,
        help="the sidecar's base URL, with or without the trailing /v1 (http:// if no scheme)",
    )
    usage.add_argument("--config", help="the sidecar's YAML config (for admin.token_env)")
    usage.add_argument("--json", action="store_true", help="print the raw JSON instead")
    usage.set_defaults(run=_usage)

    check = command("check-config", "validate a config file")
    check.add_argument("file", help="the YAML config file to check")
    check.set_defaults(run=_check_config)

    mock = command("mock-upstream", "run the simulated OpenAI-compatible upstream")
    mock.add_argument("--host", default="127.0.0.1", help="listen address")
    mock.add_argument("--port", type=int, default=9999, help="listen port")
    mock.add_argument("--latency-ms", type=non_negative, default=0.0, help="median latency")
    mock.add_argument(
        "--chunk-delay-ms", type=non_negative, default=0.0, help="delay between SSE chunks"
    )
    mock.add_argument("--seed", type=int, default=7, help="seed of latencies, lengths and faults")
    mock.add_argument("--rate-429", type=share, default=0.0, help="share of 429 answers (0..1)")
    mock.add_argument("--rate-503", type=share, default=0.0, help="share of 503 answers (0..1)")
    mock.add_argument("--rate-500", type=share, default=0.0, help="share of 500 answers (0..1)")
    mock.set_defaults(run=_mock_upstream)
    return parser


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop: the proxy's hot path is the event loop."""
    return uvloop.run(main)


def stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set, in place of asyncio's own Ctrl-C handling (which
    cancels the main task mid-await and exits with 130)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


# --- serve ---------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    host = args.host or settings.listen.host
    port = args.port if args.port is not None else settings.listen.port
    return run_async(serve(settings, host, port, access_log=args.access_log))


async def serve(settings: Settings, host: str, port: int, *, access_log: bool = False) -> int:
    # SIGTERM (docker stop, Kubernetes) stops like Ctrl-C: requests in flight finish, work
    # after the reply drains, usage records are committed, then the process exits. Caught from
    # the start, so a Ctrl-C while starting up stops the same way.
    stop = stop_on_signals()
    runner = web.AppRunner(
        create_app(settings),
        handler_cancellation=True,
        access_log=aiohttp_access_logger if access_log else None,
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port, backlog=1024).start()
        except OSError as exc:
            raise CannotListen.of(host, port, exc) from exc
        log = logging.getLogger("sidecar")
        for line in startup_lines(settings):
            log.info("%s", line)
        for warning in settings.warnings():
            log.warning("%s", warning)
        _freeze_heap()
        # Said only now that the socket is bound: a taken port never reads as "listening".
        log.info("llm-sidecar listening on http://%s:%d/v1", host, port)
        await stop.wait()
        log.info("llm-sidecar: stopping")
    finally:
        await runner.cleanup()
    return 0


# --- scan and redact -----------------------------------------------------------------------------


def _scan(args: argparse.Namespace) -> int:
    """0: every line scanned; 1: some lines were not (each named on stderr); 2: no file."""
    if args.threshold is not None and not 0 < args.threshold < 1:
        print("llm-sidecar: --threshold must be between 0 and 1.", file=sys.stderr)
        return 2
    return scan_file(args.file, sys.stdout, InjectionDetector.load(args.threshold))


def _redact(args: argparse.Namespace) -> int:
    """0: every line redacted; 1: some lines were not (each named on stderr); 2: no file."""
    return redact_file(args.file, sys.stdout)


# --- worker --------------------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if settings.redis_url is None:
        print(
            "llm-sidecar: `worker` runs the jobs of a Redis queue; set redis_url (or REDIS_URL). "
            "Without Redis, jobs run inside `llm-sidecar serve`.",
            file=sys.stderr,
        )
        return 2
    return run_async(work(settings))


async def work(settings: Settings) -> int:
    """Run the job workers until SIGTERM or SIGINT; then let running jobs finish (up to
    ``jobs.drain_s``) and close. A job abandoned past that is taken over by another worker."""
    log = logging.getLogger("sidecar")
    rt = await Runtime.open(settings)
    try:
        workers = JobWorkers(settings, rt.backends.jobs, build_pipeline(rt).handle)
        stop = stop_on_signals()
        await workers.start()
        log.info("llm-sidecar worker: %s", workers.describe())
        await stop.wait()
        log.info("llm-sidecar worker: stopping (running jobs get %gs)", settings.jobs.drain_s)
        await workers.stop()
    finally:
        await rt.close()
    log.info("llm-sidecar worker: stopped")
    return 0


def startup_lines(settings: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    """What ``serve`` says about its configuration: providers, model routes and backends.

    Key variables are named with whether they are set; a key's value is never shown, nor a
    password inside a URL.
    """
    env = os.environ if env is None else env
    lines = [
        f"provider {name}{' (default)' if name == settings.default_provider else ''}: "
        f"{redacted(provider.base_url)}, {_key_source(provider, env)}"
        for name, provider in settings.providers.items()
    ]
    if settings.models:
        routes = ", ".join(f"{model} -> {r.provider}" for model, r in settings.models.items())
        lines.append(f"model routes: {routes}")
    if settings.redis_url:
        lines.append(
            f"backends: Redis at {redacted(settings.redis_url)} (rate limits, cache, jobs)"
        )
    else:
        lines.append("backends: in-process (this instance only; set redis_url to share them)")
    lines.append(f"usage database: {redacted(settings.database_url)}")
    if not settings.jobs.workers:
        lines.append(
            "job workers: off here (jobs.workers: false); `llm-sidecar worker` runs them"
            if settings.redis_url
            else "job workers: off (jobs.workers: false) and no redis_url: submitted jobs never run"
        )
    return lines


def _key_source(provider: Provider, env: Mapping[str, str]) -> str:
    if provider.api_key_env is None:
        return "forwards the app's own key" if provider.forward_client_key else "no key"
    state = "set" if env.get(provider.api_key_env) else "NOT SET"
    return f"key from ${provider.api_key_env} ({state})"


# --- report --------------------------------------------------------------------------------------


class ReportError(Exception):
    """Why no report could be shown, in one line."""


def _report(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    return run_async(show_report(args.url, admin=settings.admin, as_json=args.json))


def report_endpoint(url: str) -> str:
    return sidecar_root(url) + "/sidecar/report"


def sidecar_root(url: str) -> str:
    """The sidecar's root, whether ``url`` is the root or ``.../v1``: ``serve`` prints the /v1
    URL, and /v1/sidecar/report would be proxied to the provider."""
    return url.rstrip("/").removesuffix("/v1")


async def show_report(url: str, *, admin: Admin | None = None, as_json: bool = False) -> int:
    endpoint = report_endpoint(url)
    try:
        body = await fetch_report(endpoint, admin or Admin())
        report = parse_report(orjson.loads(body))
    except ReportError as exc:
        print(f"llm-sidecar: {exc}", file=sys.stderr)
        return 1
    except ValueError:  # not JSON, or JSON that is not a report (pydantic's ValidationError)
        print(
            f"llm-sidecar: {endpoint} did not answer with a sidecar report: {body[:80]!r}. "
            f"Is --url the sidecar's address ({DEFAULT_URL} by default)?",
            file=sys.stderr,
        )
        return 1
    if as_json:
        print(body.decode())
    else:
        print_report(report, table_console())
    return 0


async def fetch_report(endpoint: str, admin: Admin) -> bytes:
    """GET the report's body; no answer, or an answer other than 200, is a ReportError."""
    token = admin.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(endpoint, headers=headers) as response,
        ):
            body = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__  # a timeout's message is empty
        raise ReportError(
            f"cannot reach {endpoint}: {detail}. Is `llm-sidecar serve` running?"
        ) from None
    if status == 401:
        source = admin.token_source()
        raise ReportError(
            _unauthorized(endpoint, source or admin.token_env, sent=token is not None)
        )
    if status != 200:
        raise ReportError(f"{endpoint} answered HTTP {status}: {_error_message(body)}")
    return body


def _error_message(body: bytes) -> str:
    """The error envelope's message, else the start of the body as it came."""
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return repr(body[:200])
    return str(message)


def _usage(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    query = urlencode({"user": args.user, "period": args.period})
    endpoint = sidecar_root(args.url) + "/sidecar/usage?" + query
    try:
        body = run_async(fetch_report(endpoint, settings.admin))
        report = orjson.loads(body)
        if not isinstance(report, dict) or "by_model" not in report:
            raise ValueError
    except ReportError as exc:
        print(f"llm-sidecar: {exc}", file=sys.stderr)
        return 1
    except ValueError:
        print(f"llm-sidecar: {endpoint} did not answer with a usage report.", file=sys.stderr)
        return 1
    if args.json:
        print(body.decode())
    else:
        print_usage(report, table_console())
    return 0


def _unauthorized(endpoint: str, token_env: str, *, sent: bool) -> str:
    if sent:
        return f"{endpoint} refused the admin token in ${token_env}."
    return (
        f"{endpoint} wants the sidecar's admin token: set ${token_env} "
        f"(or pass --config with the admin.token_env the sidecar uses)."
    )


# --- other commands ------------------------------------------------------------------------------


def _check_config(args: argparse.Namespace) -> int:
    """Exit 2: the file is invalid (``main`` prints why); 1: the file is valid but ``serve``
    would refuse to start here or a service it names is unreachable (each an "error:" line);
    0: ready, perhaps with "warning:" lines for what works but is likely not meant."""
    settings = load_settings(args.file)
    print(f"{args.file}:")
    for name, provider in settings.providers.items():
        key = f"key from ${provider.api_key_env}" if provider.api_key_env else "no key"
        print(f"  provider {name}: {provider.base_url} ({key})")
    print(f"  operations: {', '.join(settings.operations)}")
    source = settings.admin.token_source()
    print(f"  admin endpoints: {f'token from ${source}' if source else 'no token (open)'}")
    # The probes' verdicts are printed below; the backends' own log lines would say the same
    # again, in another format, in the middle of this output.
    with _logging_off():
        backends = run_async(_probe_backends(settings))
    for line in backends:
        print(f"  {line}")
    errors = [
        *(
            f"{problem} (`serve` refuses to start without it)"
            for problem in settings.missing_keys()
        ),
        *(line for line in backends if "unreachable" in line),
    ]
    warnings = settings.warnings()
    for error in errors:
        print(f"error: {error}")
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"{args.file}: {_verdict_line(len(errors), len(warnings))}")
    return 1 if errors else 0


def _verdict_line(errors: int, warnings: int) -> str:
    counted = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    if errors:
        return f"the file is valid, but `serve` is NOT ready here ({counted})"
    return f"valid, ready to serve ({counted})" if warnings else "valid, ready to serve"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@contextlib.contextmanager
def _logging_off() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


async def _probe_backends(settings: Settings) -> list[str]:
    """Connect to the services the configuration names, so an unreachable one is said now."""
    lines = []
    if settings.redis_url:
        client = connect(settings.redis_url, timeout_s=1.0)
        health = await ping(client, settings.redis_url)
        await client.aclose()
        lines.append(f"redis: {_verdict(health)} ({health.message})")
    else:
        lines.append("redis: not configured (in-process rate limits, cache and jobs)")
    if settings.database_url.startswith("sqlite:"):
        lines.append(f"usage database: SQLite file {sqlite_path(settings.database_url)}")
    else:
        store = PostgresUsage(settings.database_url)
        await store.open()
        health = await store.health()
        await store.close()
        lines.append(f"usage database: PostgreSQL, {_verdict(health)} ({health.message})")
    return lines


def _verdict(health: Health) -> str:
    return "reachable" if health.status == "healthy" else "unreachable"


def _freeze_heap() -> None:
    """Move everything created while starting (modules, rule tables, the app) out of the
    collector's sight, so a full collection under load scans requests only: measured, a ~55 ms
    pause at 500 RPS in `serve` without this, and a 60 ms one in `mock-upstream` (which imports
    the same modules) that showed as the proxied p99 in `bench.overhead`."""
    gc.collect()
    gc.freeze()


def _mock_upstream(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        seed=args.seed,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        faults=Faults(rate_429=args.rate_429, rate_500=args.rate_500, rate_503=args.rate_503),
    )

    def listening() -> None:
        _freeze_heap()
        print(f"simulated upstream on http://{args.host}:{args.port}/v1", flush=True)

    async def _run() -> int:
        try:
            await run_simulator(args.host, args.port, config, on_listening=listening)
        except OSError as exc:  # the simulator does no other I/O of its own: this is the bind
            raise CannotListen.of(args.host, args.port, exc) from exc
        return 0

    return run_async(_run())


def _demo(args: argparse.Namespace) -> int:
    return run_async(run_demo(requests=args.requests, concurrency=args.concurrency))
