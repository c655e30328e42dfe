"""The HTTP face of the sidecar: aiohttp routes in, pipeline replies out."""

from __future__ import annotations

import functools
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import orjson
from aiohttp import web
from prometheus_client import generate_latest

from sidecar import stream
from sidecar.config import Settings
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline import Next, build_pipeline
from sidecar.pipeline.body import BodyLimit
from sidecar.runtime import Runtime, Sleep
from sidecar.telemetry.report import build_report
from sidecar.telemetry.setup import Providers
from sidecar.upstream.transport import Transport

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
PIPELINE: web.AppKey[Next] = web.AppKey("pipeline")


def create_app(
    settings: Settings,
    *,
    transport: Transport | None = None,
    providers: Providers | None = None,
    sleep: Sleep | None = None,
) -> web.Application:
    # Body size is enforced by the pipeline's ReadBody stage, with the error envelope.
    app = web.Application(client_max_size=settings.limits.max_body_bytes)
    app.cleanup_ctx.append(
        functools.partial(
            _runtime, settings=settings, transport=transport, providers=providers, sleep=sleep
        )
    )
    app.router.add_route("*", "/v1/{tail:.*}", proxy)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/sidecar/report", report)
    return app


async def _runtime(
    app: web.Application,
    *,
    settings: Settings,
    transport: Transport | None,
    providers: Providers | None,
    sleep: Sleep | None,
) -> AsyncIterator[None]:
    rt = Runtime.create(settings, transport=transport, providers=providers, sleep=sleep)
    app[RUNTIME] = rt
    app[PIPELINE] = build_pipeline(rt)
    rt.start()
    yield
    await rt.close()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness; circuits that are open make the upstream, and so the sidecar, degraded."""
    circuits = [
        {"provider": provider, "model": model, "state": state.name.lower()}
        for provider, model, state in request.app[RUNTIME].breakers.states()
    ]
    failing = [c for c in circuits if c["state"] != "closed"]
    upstream = {
        "status": "degraded" if failing else "healthy",
        "latency_ms": None,
        "message": (
            "circuits not closed: " + ", ".join(f"{c['provider']}/{c['model']}" for c in failing)
            if failing
            else "all circuits closed"
        ),
        "circuits": circuits,
    }
    body = {
        "status": upstream["status"],
        "services": {"upstream": upstream},
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return web.json_response(body, dumps=_dumps)


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
        if token is None or hmac.compare_digest(offered.encode(), token.encode()):
            return await handler(request)
        err = SidecarError(
            ErrorCode.UNAUTHORIZED,
            "This admin endpoint needs 'Authorization: Bearer <token>' with the sidecar's admin "
            "token (the variable named by admin.token_env).",
        )
        return web.Response(status=401, body=err.body(new_request_id()), headers=err.headers())

    return guarded


@admin_only
async def report(request: web.Request) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    return web.json_response(build_report(rt.telemetry, rt.settings), dumps=_dumps)


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


def new_request_id() -> str:
    """128 random bits as 32 hex digits, like a uuid4 hex but without building a UUID."""
    return os.urandom(16).hex()


async def proxy(request: web.Request) -> web.StreamResponse:
    ex = Exchange(
        request_id=request.headers.get("X-Request-Id") or new_request_id(),
        method=request.method,
        path=request.match_info["tail"],
        query=request.query_string,
        headers=request.headers,
        read_body=functools.partial(_read_body, request),
    )
    reply = await request.app[PIPELINE](ex)
    if reply.stream is None:
        return web.Response(status=reply.status, body=reply.body, headers=_headers(ex, reply))
    return await _relay(request, ex, reply)


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyLimit
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyLimit from None


def _headers(ex: Exchange, reply: Reply) -> dict[str, str]:
    headers = reply.headers
    headers["X-Request-Id"] = ex.request_id
    headers["X-Sidecar-Cache"] = ex.cache
    if model := ex.response_model or ex.upstream_model:
        headers["X-Sidecar-Model"] = model
    if ex.fallback:
        headers["X-Sidecar-Fallback"] = ex.fallback
    if reply.stream is None:
        if ex.cost_usd is not None:
            headers["X-Sidecar-Cost-USD"] = f"{ex.cost_usd:f}"
        overhead_s = time.perf_counter() - ex.started - ex.upstream_s
        headers["X-Sidecar-Overhead-Ms"] = f"{overhead_s * 1000:.3f}"
    return headers


async def _relay(request: web.Request, ex: Exchange, reply: Reply) -> web.StreamResponse:
    """Pass SSE events through as they arrive; end cleanly with an error event on failure."""
    assert reply.stream is not None
    response = web.StreamResponse(status=reply.status, headers=_headers(ex, reply))
    await response.prepare(request)
    relayed = stream.events(reply, ex)
    try:
        async for event in relayed:
            await response.write(event)
    except SidecarError as err:
        ex.error_code = err.code.value
        await response.write(sse_error(err, ex.request_id))
    except ConnectionResetError:
        log.debug("client %s went away mid-stream", ex.request_id)
        return response
    finally:
        # Closing the relay closes the upstream response, so the provider stops generating.
        await relayed.aclose()
    await response.write_eof()
    return response


def sse_error(err: SidecarError, request_id: str) -> bytes:
    return b"data: " + err.body(request_id) + b"\n\n"
