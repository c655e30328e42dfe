"""Pass-through bodies and streams are relayed as they arrive, with bounded memory."""

from __future__ import annotations

import asyncio

import aiohttp
import openai
import pytest
from aiohttp import web

from sidecar.upstream import transport
from tests.helpers import MakeSidecar, ServerFactory, sdk, sim_provider


class FileUpstream:
    """Serves a file in chunks: the first at once, the rest after the test opens the gate."""

    def __init__(self, chunks: int = 6, pause_s: float = 0.0) -> None:
        self.chunks = chunks
        self.pause_s = pause_s
        self.gate = asyncio.Event()

    async def content(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        await response.write(b"a" * 1024)
        await self.gate.wait()
        for _ in range(self.chunks - 1):
            await asyncio.sleep(self.pause_s)
            await response.write(b"b" * 1024)
        await response.write_eof()
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/files/{id}/content", self.content)
        return app


async def test_a_download_reaches_the_client_before_the_upstream_finishes(
    aiohttp_server: ServerFactory, make_sidecar: MakeSidecar
) -> None:
    """A pass-through body is streamed, not read whole into memory first."""
    files = FileUpstream()
    upstream = await aiohttp_server(files.app())
    sidecar = await make_sidecar(str(upstream.make_url("/v1")))
    async with (
        aiohttp.ClientSession() as http,
        http.get(sidecar.make_url("/v1/files/file-1/content")) as resp,
    ):
        first = await resp.content.readexactly(1024)
        assert first == b"a" * 1024
        assert not files.gate.is_set()  # the upstream is still holding the rest
        files.gate.set()
        rest = await resp.read()
    assert len(rest) == 5 * 1024


async def test_a_long_download_is_bounded_per_read_not_in_total(
    aiohttp_server: ServerFactory, make_sidecar: MakeSidecar
) -> None:
    """A body that takes longer than timeout_s in total, but keeps arriving, is not cut off."""
    files = FileUpstream(chunks=5, pause_s=0.1)
    files.gate.set()
    upstream = await aiohttp_server(files.app())
    url = str(upstream.make_url("/v1"))
    sidecar = await make_sidecar(url, providers={"sim": sim_provider(url, timeout_s=0.25)})
    async with (
        aiohttp.ClientSession() as http,
        http.get(sidecar.make_url("/v1/files/file-1/content")) as resp,
    ):
        body = await resp.read()
    assert (resp.status, len(body)) == (200, 5 * 1024)


async def test_an_endless_stream_event_is_an_upstream_failure_not_unbounded_memory(
    aiohttp_server: ServerFactory, make_sidecar: MakeSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SSE 'event' that never ends is cut at the limit and the client gets an error event."""
    monkeypatch.setattr(transport, "MAX_EVENT_BYTES", 64 * 1024)

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(40):  # 160 KiB with no blank line
            await response.write(b"data: " + b"x" * 4096)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", endless)
    upstream = await aiohttp_server(app)
    sidecar = await make_sidecar(str(upstream.make_url("/v1")))
    async with sdk(sidecar) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                pass
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "NETWORK"
