"""A reply always releases what it holds: upstream connection, spans, breaker probe.

However a request ends — the client gone before the reply could be sent, cancelled before the
first event — the upstream response is closed, the request's telemetry is finished once, and a
half-open breaker gets its probe back instead of refusing every call from then on.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.runtime import Runtime
from sidecar.server import RUNTIME, create_app
from sidecar.upstream.breaker import State
from tests.helpers import ServerFactory, sidecar_settings

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'


class HeldUpstream:
    """Holds its answer at a gate: before the headers, or after them but before any event."""

    def __init__(self, *, hold_headers: bool) -> None:
        self.hold_headers = hold_headers
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()
        self.closed = asyncio.Event()  # the sidecar closed our response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.arrived.set()
        if self.hold_headers:
            await self.gate.wait()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            if not self.hold_headers:
                await self.gate.wait()
            for _ in range(200):  # until the sidecar hangs up (bounded)
                await response.write(CHUNK)
                await asyncio.sleep(0.01)
        except (asyncio.CancelledError, ConnectionResetError):
            self.closed.set()
            raise
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait for a condition (bounded), polling the loop; not a timing assertion."""
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(f"condition not met within {timeout_s} s")


def half_open(rt: Runtime) -> None:
    """Put gpt-4o's breaker where the next call is its single half-open probe."""
    rt.breakers.get("sim", "gpt-4o").force_open(0)


def probe_released(rt: Runtime) -> bool:
    breaker = rt.breakers.get("sim", "gpt-4o")
    return breaker.state is State.HALF_OPEN and breaker.allow()


@asynccontextmanager
async def uncancelled(app: web.Application) -> AsyncIterator[tuple[str, web.AppRunner]]:
    """The app served without handler cancellation (aiohttp's default for an AppRunner)."""
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", runner
    finally:
        await runner.cleanup()


async def test_a_reply_whose_prepare_fails_still_closes_the_upstream_and_ends_telemetry(
    aiohttp_server: ServerFactory, provider_key: str
) -> None:
    """The client leaves before the upstream answers: prepare() fails, nothing leaks."""
    held = HeldUpstream(hold_headers=True)
    upstream = await aiohttp_server(held.app())
    app = create_app(sidecar_settings(str(upstream.make_url("/v1"))))
    async with uncancelled(app) as (url, runner):
        rt = app[RUNTIME]
        half_open(rt)
        host, port = url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        body = orjson.dumps(BODY)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: sidecar\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        await asyncio.wait_for(held.arrived.wait(), 5)
        # The app gives up: a reset, so the sidecar learns at once that the client is gone.
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.close()
        await writer.wait_closed()
        server = runner.server
        assert server is not None
        await wait_until(lambda: all(h.transport is None for h in server.connections))
        held.gate.set()  # now the upstream answers; the sidecar cannot send it anywhere
        await asyncio.wait_for(held.closed.wait(), 5)
        await wait_until(lambda: "chat" in rt.telemetry.stats.by_operation())
        assert rt.telemetry.stats.by_operation()["chat"].count == 1
        assert probe_released(rt)


async def test_a_request_cancelled_before_the_first_event_releases_everything(
    aiohttp_server: ServerFactory, upstream: TestServer, provider_key: str
) -> None:
    """With handler cancellation on, a client gone before any event ends the stream cleanly."""
    held = HeldUpstream(hold_headers=False)
    held_server = await aiohttp_server(held.app())
    settings = sidecar_settings(str(held_server.make_url("/v1")))
    sidecar = await aiohttp_server(create_app(settings))  # the test server cancels handlers
    rt = sidecar.app[RUNTIME]
    half_open(rt)
    async with aiohttp.ClientSession() as http:
        response = await http.post(sidecar.make_url("/v1/chat/completions"), json=BODY)
        assert response.status == 200
        response.close()
    await asyncio.wait_for(held.closed.wait(), 5)
    await wait_until(lambda: "chat" in rt.telemetry.stats.by_operation())
    assert rt.telemetry.stats.by_operation()["chat"].count == 1
    assert probe_released(rt)
