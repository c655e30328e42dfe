"""Streams pass through event by event, and a client that leaves stops the upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.helpers import APP_KEY, MakeSidecar, ServerFactory

CHUNK = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
    b'"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n'
)
LAST = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


class GatedUpstream:
    """Sends one chunk, then holds the rest until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.first_sent = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await response.write(CHUNK % b"first")
            self.first_sent.set()
            await self.gate.wait()
            await response.write(LAST)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app


async def test_first_chunk_reaches_the_client_before_the_upstream_sends_its_last(
    aiohttp_server: ServerFactory, make_sidecar: MakeSidecar
) -> None:
    """The sidecar relays each event as it arrives; it never waits for the whole stream.
    (Output redaction off: it may hold back the end of a word that could start a secret.)"""
    gated = GatedUpstream()
    upstream = await aiohttp_server(gated.app())
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), security={"output": "off"})
    async with openai.AsyncOpenAI(
        base_url=str(sidecar.make_url("/v1")), api_key=APP_KEY, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        first = await anext(aiter(stream))
        assert first.choices[0].delta.content == "first"
        assert not gated.gate.is_set()  # the upstream has not sent its last chunk yet
        gated.gate.set()
        rest = [chunk async for chunk in stream]
    assert rest[-1].choices[0].finish_reason == "stop"


async def test_client_disconnect_mid_stream_cancels_the_upstream_request(
    aiohttp_server: ServerFactory, make_sidecar: MakeSidecar
) -> None:
    """When the app goes away mid-stream, the upstream request is closed too."""
    gated = GatedUpstream()
    upstream = await aiohttp_server(gated.app())
    sidecar = await make_sidecar(str(upstream.make_url("/v1")))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(sidecar.make_url("/v1/chat/completions"), json=body)
        assert (await resp.content.readuntil(b"\n\n")).startswith(b"data: ")
        resp.close()  # drop the connection without reading the rest
        await asyncio.wait_for(gated.cancelled.wait(), timeout=5)
        # Counted as the app hanging up, not as a sidecar error (bounded wait for the count).
        for _ in range(100):
            async with http.get(sidecar.make_url("/metrics")) as scrape:
                text = await scrape.text()
            if 'sidecar_outcome="client_gone"' in text:
                break
            await asyncio.sleep(0.02)
    requests = [line for line in text.splitlines() if line.startswith("sidecar_requests_total{")]
    assert any('sidecar_outcome="client_gone"' in line for line in requests), requests
    assert not any('sidecar_outcome="error"' in line for line in requests), requests


async def drain(stream: AsyncIterable[object], into: list[object]) -> None:
    async for chunk in stream:
        into.append(chunk)


async def test_upstream_reset_mid_stream_ends_with_an_error_event(
    client: openai.AsyncOpenAI,
) -> None:
    """A stream the upstream drops ends cleanly with an OpenAI-style error event."""
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers={"X-Mock-Outcome": "reset"},
    )
    received: list[object] = []
    with pytest.raises(openai.APIError) as caught:
        await drain(stream, received)
    assert len(received) >= 1  # some chunks arrived, then the error event ended the stream
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "NETWORK"
