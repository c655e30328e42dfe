"""The HTTP face of the sidecar: aiohttp routes in, pipeline replies out."""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http import HttpProcessingError
from prometheus_client import generate_latest

from sidecar import stream
from sidecar.config import Settings
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.inbound import request_id_for, shown, upstream_path
from sidecar.jobs import JobService, JobWorkers
from sidecar.pipeline import Pipeline, build_pipeline
from sidecar.pipeline.body import BodyLimit, BodyUnreadable, parse_object
from sidecar.pipeline.identity import is_valid_model
from sidecar.pipeline.ratelimit import user_status
from sidecar.runtime import Overrides, Runtime
from sidecar.telemetry.report import build_report
from sidecar.usage_report import build_usage, parse_period

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
JOBS = web.AppKey("jobs", JobService)


def create_app(settings: Settings, overrides: Overrides | None = None) -> web.Application:
    """The sidecar as an aiohttp application; ``overrides`` replaces runtime parts (tests)."""
    app = web.Application(
        # Body size is enforced by the pipeline's ReadBody stage, with the error envelope.
        client_max_size=settings.limits.max_body_bytes,
        middlewares=[_errors_in_envelope],
        # Options of aiohttp's per-connection protocol, set here so that whoever runs the app
        # (the CLI, the demo, tests) gets them; they win over the runner's own.
        # ``limits.header_timeout_s``: a connection must deliver a whole request line and
        # headers this soon after opening (or after its previous response); aiohttp's one timer
        # for it also closes idle keep-alive connections, so it stays above the idle time of
        # common client pools (httpx 5 s, undici 4 s, aiohttp 15 s), which close first.
        handler_args={
            "keepalive_timeout": settings.limits.header_timeout_s,
            "logger": _PROTOCOL_LOG,
        },
    )
    app.cleanup_ctx.append(functools.partial(_runtime, settings=settings, overrides=overrides))
    app.cleanup_ctx.append(_jobs)  # after the runtime: the workers stop before it closes
    app.router.add_route("*", "/v1/{tail:.*}", proxy)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/sidecar/report", report)
    app.router.add_get("/sidecar/ratelimit/{user}", ratelimit_status)
    app.router.add_delete("/sidecar/cache", cache_invalidate)
    app.router.add_get("/sidecar/usage", usage)
    app.router.add_post("/sidecar/jobs", job_submit)
    app.router.add_get("/sidecar/jobs/{job_id}", job_status)
    app.router.add_get("/sidecar/queues", queues)
    return app


async def _runtime(
    app: web.Application, *, settings: Settings, overrides: Overrides | None
) -> AsyncIterator[None]:
    rt = await Runtime.open(settings, overrides)
    app[RUNTIME] = rt
    app[PIPELINE] = build_pipeline(rt)
    yield
    await rt.close()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    """The job API, and the job workers when this process runs them (``jobs.workers``)."""
    rt = app[RUNTIME]
    app[JOBS] = JobService(rt.settings, rt.backends.jobs)
    if not rt.settings.jobs.workers:
        yield
        return
    workers = JobWorkers(rt.settings, rt.backends.jobs, app[PIPELINE].handle)
    await workers.start()
    try:
        yield
    finally:
        await workers.stop()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the upstream (a cached probe and the circuits) and every backend."""
    rt = request.app[RUNTIME]
    services = await rt.health()
    # 503 only when the sidecar cannot serve at all; a backend down degrades it (fallbacks).
    if services["upstream"]["status"] == "unhealthy":
        status = "unhealthy"
    elif all(service["status"] == "healthy" for service in services.values()):
        status = "healthy"
    else:
        status = "degraded"
    summary = build_report(rt.telemetry, rt.settings)["summary"]
    body = {
        "status": status,
        "services": services,
        "timestamp": datetime.now(UTC).isoformat(),
        # The live figures beside the health (the report's window; no costs: not an admin page).
        "metrics": {key: summary[key] for key in _READY_METRICS},
    }
    return web.json_response(body, status=503 if status == "unhealthy" else 200, dumps=_dumps)


_READY_METRICS = (
    "total_operations",
    "average_latency_ms",
    "error_rate",
    "cache_hit_rate",
    "slow_operations",
    "window_s",
)


async def metrics(request: web.Request) -> web.Response:
    telemetry = request.app[RUNTIME].telemetry
    telemetry.batch.flush()  # what has been buffered belongs in this scrape
    registry = telemetry.providers.registry
    return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def admin_only(handler: Handler) -> Handler:
    """Admin endpoints need ``Authorization: Bearer $SIDECAR_ADMIN_TOKEN`` when it is set."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        token = request.app[RUNTIME].settings.admin.token()
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        # aiohttp decodes header bytes that are not UTF-8 as surrogates: encode them back to
        # the bytes that were sent (which then simply do not match) rather than fail.
        offered_bytes = offered.encode("utf-8", "surrogateescape")
        if token is None or hmac.compare_digest(offered_bytes, token.encode()):
            return await handler(request)
        raise SidecarError(
            ErrorCode.UNAUTHORIZED,
            "This admin endpoint needs 'Authorization: Bearer <token>' with the sidecar's admin "
            "token (the variable named by admin.token_env).",
        )

    return guarded


@admin_only
async def report(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    return web.json_response(build_report(rt.telemetry, rt.settings), dumps=_dumps)


@admin_only
async def ratelimit_status(request: web.Request) -> web.StreamResponse:
    """Per operation: requests and rejections (last day), and the window as it stands now."""
    rt = request.app[RUNTIME]
    status = await user_status(rt, request.match_info["user"])
    return web.json_response(status, dumps=_dumps)


@admin_only
async def cache_invalidate(request: web.Request) -> web.StreamResponse:
    """Remove every cached answer of ``?operation=OP``; answers how many were removed."""
    rt = request.app[RUNTIME]
    operation = request.query.get("operation")
    if not operation or operation not in rt.settings.operations:
        known = ", ".join(sorted(rt.settings.operations))
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"DELETE /sidecar/cache needs ?operation=OP with a configured operation ({known}).",
            reason="unknown_operation",
        )
    removed = await request.app[PIPELINE].cache.clear(operation)
    return web.json_response({"operation": operation, "removed": removed})


@admin_only
async def usage(request: web.Request) -> web.StreamResponse:
    """A user's cost report for the current day, week or month (UTC)."""
    user = request.query.get("user")
    period = parse_period(request.query.get("period", "month"))
    if not user or period is None:
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            "GET /sidecar/usage needs ?user=U and period=day|week|month (default month).",
            reason="bad_query",
        )
    costs = request.app[PIPELINE].costs
    report = await build_usage(costs, user, period, datetime.now(UTC))
    return web.json_response(report, dumps=_dumps)


async def job_submit(request: web.Request) -> web.StreamResponse:
    """Enqueue ``{path, body, priority, scheduled_for?, user?}``: 202 with the job's id."""
    payload = parse_object(await request.read())
    user = request.headers.get("X-Sidecar-User") or None
    job_id, state = await request.app[JOBS].submit(payload, user=user)
    return web.json_response(
        {"id": job_id, "status": state},
        status=202,
        headers={"Location": f"/sidecar/jobs/{job_id}"},
    )


async def job_status(request: web.Request) -> web.StreamResponse:
    """``{id, status, attempts, result?, error?}``; 404 in the envelope for an unknown id."""
    job_id = request.match_info["job_id"]
    shown_job = await request.app[JOBS].status(job_id)
    if shown_job is None:
        unknown = SidecarError(
            ErrorCode.INVALID_INPUT,
            f"No job {shown(job_id)!r}: unknown, or completed longer ago than "
            "jobs.keep_completed_s.",
            reason="unknown_job",
        )
        return _error_response(request, unknown, 404)
    return web.json_response(shown_job, dumps=_dumps)


@admin_only
async def queues(request: web.Request) -> web.StreamResponse:
    """Jobs per state of every queue: ``{queue: {waiting, active, completed, failed, delayed}}``."""
    return web.json_response(await request.app[JOBS].counts())


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


async def proxy(request: web.Request) -> web.StreamResponse:
    url = request.rel_url
    ex = Exchange(
        request_id=request_id_for(request),
        method=request.method,
        path=upstream_path(url.raw_path),
        # Forwarded as sent: decoding it here would have the upstream decode it a second time.
        query=url.raw_query_string,
        headers=request.headers,
        read_body=functools.partial(_read_body, request),
    )
    reply = await request.app[PIPELINE].handle(ex)
    try:
        if reply.stream is None:
            return web.Response(status=reply.status, body=reply.body, headers=_headers(ex, reply))
        return await _relay(request, ex, reply)
    finally:
        # However the reply went (sent, prepare failed, cancelled): release what it holds.
        await reply.aclose()


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyLimit
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyLimit from None
    except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a body that is not
        raise BodyUnreadable(_last_line(exc)) from None


def _last_line(exc: BaseException) -> str:
    """aiohttp's parser errors read "400, message:\\n  <what went wrong>": keep what went wrong."""
    lines = str(exc).strip().splitlines()
    return lines[-1].strip() if lines else type(exc).__name__


def _headers(ex: Exchange, reply: Reply) -> dict[str, str]:
    headers = reply.headers
    headers["X-Request-Id"] = ex.request_id
    headers["X-Sidecar-Cache"] = ex.cache
    # The upstream names the answering model: checked like a client's model before it becomes
    # a header (a control character would make the whole response unsendable).
    if (model := ex.response_model or ex.upstream_model) and is_valid_model(model):
        headers["X-Sidecar-Model"] = model
    if ex.fallback and reply.status < 400:  # only when a fallback model answered
        headers["X-Sidecar-Fallback"] = ex.fallback
    if reply.stream is None:
        if ex.cost_usd is not None:
            headers["X-Sidecar-Cost-USD"] = f"{ex.cost_usd:f}"
        overhead_s = time.perf_counter() - ex.started - ex.upstream_s
        headers["X-Sidecar-Overhead-Ms"] = f"{overhead_s * 1000:.3f}"
    return headers


async def _relay(request: web.Request, ex: Exchange, reply: Reply) -> web.StreamResponse:
    """Pass the stream through as it arrives; the relay ends it (error event included)."""
    response = web.StreamResponse(status=reply.status, headers=_headers(ex, reply))
    relayed = stream.relay(reply, ex)
    try:
        await response.prepare(request)
        async for event in relayed:
            await response.write(event)
        await response.write_eof()
    except ConnectionResetError:
        log.debug("client %s went away before the stream ended", ex.request_id)
    except stream.Truncated:
        # A raw body cannot carry an error event: cut the connection so the client sees a
        # truncated response rather than a clean end.
        if request.transport is not None:
            request.transport.close()
    finally:
        # Closing the relay closes the upstream response, so the provider stops generating.
        await relayed.aclose()
    return response


# --- errors outside the pipeline ------------------------------------------------------------

# aiohttp's own HTTP errors (the router's 404 and 405 above all) as the envelope states them.
_HTTP_ERRORS: dict[int, tuple[ErrorCode, str]] = {
    404: (ErrorCode.INVALID_INPUT, "unknown_path"),
    405: (ErrorCode.INVALID_INPUT, "method_not_allowed"),
    413: (ErrorCode.PAYLOAD_TOO_LARGE, "payload_too_large"),
}


@web.middleware
async def _errors_in_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Whatever a handler or the router raises reaches the client in the OpenAI envelope.

    The proxy's pipeline answers its own errors; this covers the rest: unknown paths and
    methods (aiohttp answers those in plain text), refused paths, admin auth, and our bugs.
    """
    try:
        return await handler(request)
    except SidecarError as err:
        return _error_response(request, err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error_response(request, _http_error(request, exc), exc.status, allow)
    except Exception:
        if request.writer.output_size:
            raise  # part of a response is out: nothing else can be said on this connection
        # The path as sent (escaped): a decoded one could carry a line break into the log.
        log.exception("unexpected error handling %s %r", request.method, request.raw_path)
        internal = SidecarError(ErrorCode.INTERNAL, "internal sidecar error")
        return _error_response(request, internal)


def _http_error(request: web.Request, exc: web.HTTPException) -> SidecarError:
    code, reason = _HTTP_ERRORS.get(exc.status, (ErrorCode.INVALID_INPUT, "bad_request"))
    where = f"{request.method} {shown(request.rel_url.raw_path)}"
    if exc.status == 404:
        paths = ", ".join(
            resource.canonical.replace("{tail}", "*") for resource in request.app.router.resources()
        )
        message = f"Unknown path {where}; the sidecar serves {paths}."
    elif exc.status == 405:
        message = f"{where} is not allowed; allowed methods: {exc.headers.get('Allow', 'none')}."
    else:
        message = f"{where}: {exc.reason}."
    return SidecarError(code, message, reason=reason)


def _error_response(
    request: web.BaseRequest,
    err: SidecarError,
    status: int | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> web.Response:
    request_id = request_id_for(request)
    headers = {**(extra_headers or {}), **err.headers(), "X-Request-Id": request_id}
    return web.Response(status=status or err.status, body=err.body(request_id), headers=headers)


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's connection logger, with a client's malformed HTTP as one line at INFO.

    aiohttp logs every request it cannot parse (bad request line, bad header, a body that does
    not decode as its Content-Encoding says) with ``logger.exception``: an ERROR and a
    traceback for a client's mistake, which pages whoever watches errors. Those become one
    line; anything else (a bug of ours) is still logged as aiohttp logs it.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, _CLIENT_FAULTS):
            what = " ".join(str(exc_info).split())[:300]  # it quotes the offending line
            self.logger.info(f"{msg}: %s", *args, what)
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


# What aiohttp raises for bytes that are not a valid HTTP request (or its body).
_CLIENT_FAULTS = (HttpProcessingError, web.RequestPayloadError)
_PROTOCOL_LOG = _ProtocolLog(logging.getLogger("aiohttp.server"))
