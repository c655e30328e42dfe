"""Every OpenAI endpoint through the sidecar, driven by the real openai SDK."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import openai
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.simulator import Simulator
from tests.helpers import APP_KEY, PROVIDER_KEY

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say something nice about proxies."}
]


async def test_chat_json_answers_with_sidecar_headers(client: openai.AsyncOpenAI) -> None:
    """A chat completion passes through whole, with request id, model and overhead headers."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert len(raw.headers["x-request-id"]) >= 16
    assert raw.headers["x-sidecar-model"] == "gpt-4o-mini"
    assert raw.headers["x-sidecar-cache"] == "BYPASS"
    assert float(raw.headers["x-sidecar-overhead-ms"]) >= 0


async def test_chat_stream_hides_the_usage_chunk_the_client_did_not_ask_for(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    """The sidecar asks the upstream for usage but strips that extra final chunk."""
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    sent = sim.seen[-1].body
    assert sent is not None
    assert sent["stream_options"] == {"include_usage": True}


async def test_chat_stream_keeps_the_usage_chunk_when_asked(client: openai.AsyncOpenAI) -> None:
    """A client that asked for include_usage gets the usage chunk as usual."""
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


async def test_responses_json_and_stream(client: openai.AsyncOpenAI) -> None:
    """The Responses API works both whole and streamed."""
    response = await client.responses.create(model="gpt-4o", input="Hello there")
    assert response.output_text
    assert response.usage is not None
    assert response.usage.input_tokens > 0

    stream = await client.responses.create(model="gpt-4o", input="Hello there", stream=True)
    types = [event.type async for event in stream]
    assert types[0] == "response.created"
    assert "response.output_text.delta" in types
    assert types[-1] == "response.completed"


async def test_embeddings_in_the_sdk_default_base64_encoding(client: openai.AsyncOpenAI) -> None:
    """Embeddings decode on the client exactly as from OpenAI."""
    result = await client.embeddings.create(
        model="text-embedding-3-small", input=["one", "two"], dimensions=16
    )
    assert [len(item.embedding) for item in result.data] == [16, 16]
    assert result.usage.prompt_tokens > 0


async def test_image_generation(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    """Image generations pass through with their size and quality untouched."""
    images = await client.images.generate(
        model="dall-e-3", prompt="a lighthouse", n=1, size="1024x1024", quality="hd"
    )
    assert images.data is not None
    assert len(images.data) == 1
    body = sim.seen[-1].body
    assert body is not None
    assert (body["size"], body["quality"]) == ("1024x1024", "hd")


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    """GET /v1/models is forwarded."""
    models = [model.id async for model in client.models.list()]
    assert "gpt-4o" in models


async def test_provider_key_replaces_the_apps_key(
    client: openai.AsyncOpenAI, sim: Simulator
) -> None:
    """The upstream sees the provider key from the environment, never the app's own key."""
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    seen = sim.seen[-1]
    assert seen.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert all(APP_KEY not in value for value in seen.headers.values())


async def test_unknown_v1_paths_pass_through_unchanged(sidecar: TestServer, sim: Simulator) -> None:
    """Any other /v1/* request is forwarded as is: method, path, query and body."""
    async with aiohttp.ClientSession() as http:
        url = sidecar.make_url("/v1/vector_stores/vs_1/files?limit=2")
        headers = {"Content-Type": "application/json"}
        async with http.post(url, data=b'{"file_id": "f1"}', headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["X-Request-Id"]
    seen = sim.seen[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/vector_stores/vs_1/files")
    assert seen.body == {"file_id": "f1"}


async def test_request_id_from_the_app_is_kept(client: openai.AsyncOpenAI, sim: Simulator) -> None:
    """An X-Request-Id sent by the app is reused end to end for correlation."""
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Request-Id": "req-abc-123"}
    )
    assert raw.headers["x-request-id"] == "req-abc-123"
    assert sim.seen[-1].headers["x-request-id"] == "req-abc-123"


async def test_provider_cookies_are_never_replayed_to_other_requests(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    make_sidecar: Callable[..., Awaitable[TestServer]],
) -> None:
    """A provider's Set-Cookie is not kept and sent on later calls (another user's, say)."""
    cookies_seen: list[str | None] = []

    async def models(request: web.Request) -> web.Response:
        cookies_seen.append(request.headers.get("Cookie"))
        response = web.json_response({"object": "list", "data": []})
        response.set_cookie("__cf_bm", "abc")
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    upstream = await aiohttp_server(app)
    # A host name, not an IP: cookie jars ignore cookies from IP-address hosts.
    sidecar = await make_sidecar(f"http://localhost:{upstream.port}/v1")
    async with aiohttp.ClientSession() as http:
        for user in ("alice", "bob"):
            url = sidecar.make_url("/v1/models")
            async with http.get(url, headers={"X-Sidecar-User": user}) as resp:
                assert resp.status == 200
                assert "Set-Cookie" not in resp.headers
    assert cookies_seen == [None, None]
