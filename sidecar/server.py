"""The HTTP face of the sidecar: aiohttp routes in, pipeline replies out."""

from __future__ import annotations

import functools
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import generate_latest

from sidecar import stream
from sidecar.config import Settings
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline import Next, build_pipeline
from sidecar.pipeline.body import BodyLimit
from sidecar.runtime import Overrides, Runtime
from sidecar.telemetry.report import build_report

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
PIPELINE: web.AppKey[Next] = web.AppKey("pipeline")


def create_app(settings: Settings, overrides: Overrides | None = None) -> web.Application:
    """The sidecar as an aiohttp application; ``overrides`` replaces runtime parts (tests)."""
    # Body size is enforced by the pipeline's ReadBody stage, with the error envelope.
    app = web.Application(client_max_size=settings.limits.max_body_bytes)
    app.cleanup_ctx.append(functools.partial(_runtime, settings=settings, overrides=overrides))
    app.router.add_route("*", "/v1/{tail:.*}", proxy)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/sidecar/report", report)
    return app


async def _runtime(
    app: web.Application, *, settings: Settings, overrides: Overrides | None
) -> AsyncIterator[None]:
    rt = await Runtime.open(settings, overrides)
    app[RUNTIME] = rt
    app[PIPELINE] = build_pipeline(rt)
    yield
    await rt.close()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the upstream's circuits and every backend, each with its state."""
    rt = request.app[RUNTIME]
    services: dict[str, Any] = {"upstream": _upstream_health(rt)}
    for name, health in (await rt.health()).items():
        services[name] = health.as_dict()
    # 503 only when the sidecar cannot serve at all; a backend down degrades it (fallbacks).
    if services["upstream"]["status"] == "unhealthy":
        status = "unhealthy"
    elif all(service["status"] == "healthy" for service in services.values()):
        status = "healthy"
    else:
        status = "degraded"
    body = {"status": status, "services": services, "timestamp": datetime.now(UTC).isoformat()}
    return web.json_response(body, status=503 if status == "unhealthy" else 200, dumps=_dumps)


def _upstream_health(rt: Runtime) -> dict[str, Any]:
    circuits = [
        {"provider": provider, "model": model, "state": state.name.lower()}
        for provider, model, state in rt.breakers.states()
    ]
    failing = [c for c in circuits if c["state"] != "closed"]
    return {
        "status": "degraded" if failing else "healthy",
        "latency_ms": None,
        "message": (
            "circuits not closed: " + ", ".join(f"{c['provider']}/{c['model']}" for c in failing)
            if failing
            else "all circuits closed"
        ),
        "circuits": circuits,
    }


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
