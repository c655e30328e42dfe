"""The simulated upstream must look like OpenAI to the real SDK and misbehave exactly on demand."""

from __future__ import annotations

import asyncio
import base64
import socket
import statistics
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import ResponseInputParam
from pytest_aiohttp.plugin import AiohttpClient

from sidecar.simulator import (
    Faults,
    Simulator,
    SimulatorConfig,
    parse_outcome,
    run_simulator,
)

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
Client = TestClient[web.Request, web.Application]


@dataclass
class Served:
    sim: Simulator
    http: Client
    sdk: openai.AsyncOpenAI


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(aiohttp_client: AiohttpClient) -> AsyncIterator[Serve]:
    """Start a simulator on a test server with a raw aiohttp client and an SDK client."""
    sdks: list[openai.AsyncOpenAI] = []

    async def start(config: SimulatorConfig | None = None, **server_kwargs: Any) -> Served:
        sim = Simulator(config)
        http = await aiohttp_client(sim.app(), server_kwargs=server_kwargs)
        base_url = str(http.make_url("/v1"))
        sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        sdks.append(sdk)
        return Served(sim, http, sdk)

    yield start
    for sdk in sdks:
        await sdk.close()


async def eventually(predicate: Callable[[], bool], within_s: float = 2.0) -> None:
    """Wait for a condition the server reaches on its own schedule (not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def collect(stream: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in stream:
        into.append(item)


# --- happy paths through the real SDK ----------------------------------------------------------


async def test_chat_completion_parses(serve: Serve) -> None:
    """A chat completion parses with the SDK; max_tokens sets the word count; usage adds up."""
    s = await serve()
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x" * 400}]
    answer = await s.sdk.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=7)
    assert answer.object == "chat.completion"
    assert answer.model == "gpt-4o"
    assert answer.choices[0].finish_reason == "stop"
    assert len((answer.choices[0].message.content or "").split()) == 7
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 7
    assert 100 <= answer.usage.prompt_tokens <= 110  # 400 chars / 4 plus message framing
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 7
    assert s.sim.seen[-1].meta == {
        "prompt_tokens": answer.usage.prompt_tokens,
        "completion_tokens": 7,
    }


async def test_chat_length_is_seeded_without_max_tokens(serve: Serve) -> None:
    """Without max_tokens the completion has 20-200 tokens, the same sequence for the same seed."""
    lengths = []
    for _ in range(2):
        s = await serve(SimulatorConfig(seed=5))
        answers = [await s.sdk.chat.completions.create(**CHAT) for _ in range(3)]
        lengths.append([a.usage.completion_tokens for a in answers if a.usage])
    assert lengths[0] == lengths[1]
    assert all(20 <= n <= 200 for n in lengths[0])


async def test_chat_stream_without_usage(serve: Serve) -> None:
    """A stream: a role delta, stream_chunks content deltas, then finish_reason stop; no usage."""
    s = await serve(SimulatorConfig(stream_chunks=4))
    stream = await s.sdk.chat.completions.create(**CHAT, max_tokens=12, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(contents) == 4
    assert len("".join(c or "" for c in contents).split()) == 12
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    raw = await s.http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert b'"usage"' not in await raw.read()  # the key is absent unless include_usage is set


async def test_chat_stream_with_usage(serve: Serve) -> None:
    """include_usage adds a last choices=[] chunk with usage, "usage": null before; then [DONE]."""
    s = await serve()
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 5}
    raw = await (await s.http.post("/v1/chat/completions", json=body)).text()
    events = [line for line in raw.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all('"usage":null' in e for e in events[:-2])
    stream = await s.sdk.chat.completions.create(**body)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


async def test_chat_stream_helper_accumulates(serve: Serve) -> None:
    """The SDK's stream accumulator rebuilds the same text as the non-streamed answer."""
    s = await serve()
    async with s.sdk.chat.completions.stream(**CHAT, max_tokens=9) as stream:
        final = await stream.get_final_completion()
    plain = await s.sdk.chat.completions.create(**CHAT, max_tokens=9)
    assert final.choices[0].message.content == plain.choices[0].message.content


async def test_responses_json(serve: Serve) -> None:
    """A Responses answer parses; output_text honours max_output_tokens; usage adds up."""
    s = await serve()
    messages: ResponseInputParam = [
        {"role": "user", "content": [{"type": "input_text", "text": "y" * 80}]}
    ]
    prompts: list[str | ResponseInputParam] = ["hello there", messages]
    for prompt in prompts:
        answer = await s.sdk.responses.create(model="gpt-4o", input=prompt, max_output_tokens=6)
        assert answer.id.startswith("resp_")
        assert answer.status == "completed"
        assert len(answer.output_text.split()) == 6
        assert answer.usage is not None
        assert answer.usage.total_tokens == answer.usage.input_tokens + 6
    assert answer.usage is not None
    assert answer.usage.input_tokens >= 20  # 80 chars of list content counted


async def test_responses_stream_event_sequence(serve: Serve) -> None:
    """A streamed Response follows OpenAI's event order with consecutive sequence numbers."""
    s = await serve(SimulatorConfig(stream_chunks=3))
    async with s.sdk.responses.stream(model="gpt-4o", input="hi", max_output_tokens=9) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len(final.output_text.split()) == 9
    assert final.usage is not None
    assert final.usage.output_tokens == 9


async def test_embeddings_base64_and_float(serve: Serve) -> None:
    """Embeddings decode from the SDK's default base64; float matches; same input, same vector."""
    s = await serve()
    answer = await s.sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b", "a"])
    vectors = [d.embedding for d in answer.data]
    assert [len(v) for v in vectors] == [8, 8, 8]
    assert vectors[0] == vectors[2] != vectors[1]
    assert s.sim.seen[-1].body is not None
    assert s.sim.seen[-1].body["encoding_format"] == "base64"
    wide = await s.sdk.embeddings.create(
        model="m", input="a", dimensions=16, encoding_format="float"
    )
    assert len(wide.data[0].embedding) == 16
    raw = await s.http.post("/v1/embeddings", json={"model": "m", "input": "a"})
    floats = (await raw.json())["data"][0]["embedding"]
    assert struct.unpack("<8f", struct.pack("<8f", *floats)) == tuple(vectors[0])
    assert answer.usage.prompt_tokens == 3


async def test_images(serve: Serve) -> None:
    """Images return n URLs or b64 PNGs with revised_prompt; size/quality land in the record."""
    s = await serve()
    urls = await s.sdk.images.generate(model="dall-e-3", prompt="cat", n=2, quality="hd")
    assert urls.data is not None
    assert [bool(i.url) for i in urls.data] == [True, True]
    assert urls.data[0].revised_prompt == "cat"
    assert s.sim.seen[-1].meta == {"size": "1024x1024", "quality": "hd", "n": 2}
    b64 = await s.sdk.images.generate(
        model="dall-e-2", prompt="dog", size="512x512", response_format="b64_json"
    )
    assert b64.data is not None
    assert base64.b64decode(b64.data[0].b64_json or "").startswith(b"\x89PNG")
    assert s.sim.seen[-1].meta["size"] == "512x512"


async def test_models_list(serve: Serve) -> None:
    """GET /v1/models lists the fixed model set."""
    s = await serve()
    ids = [m.id async for m in await s.sdk.models.list()]
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-3.5-turbo", "dall-e-3"} <= set(ids)


# --- scripted and forced outcomes --------------------------------------------------------------

ERROR_CASES: list[tuple[int | str, type[openai.APIStatusError], int, str | None]] = [
    (429, openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("quota", openai.RateLimitError, 429, "insufficient_quota"),
    ("tpm", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("context", openai.BadRequestError, 400, "context_length_exceeded"),
    (401, openai.AuthenticationError, 401, "invalid_api_key"),
    (404, openai.NotFoundError, 404, "model_not_found"),
    (500, openai.InternalServerError, 500, None),
    (503, openai.InternalServerError, 503, None),
    (502, openai.InternalServerError, 502, None),
]


@pytest.mark.parametrize(("outcome", "error", "status", "code"), ERROR_CASES)
async def test_scripted_errors_raise_sdk_exceptions(
    serve: Serve,
    outcome: int | str,
    error: type[openai.APIStatusError],
    status: int,
    code: str | None,
) -> None:
    """Each scripted outcome yields its status, OpenAI error body and SDK exception class."""
    s = await serve()
    s.sim.script("gpt-4o", [outcome])
    with pytest.raises(error) as caught:
        await s.sdk.chat.completions.create(**CHAT)
    assert caught.value.status_code == status
    assert caught.value.code == code
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert s.sim.seen[-1].outcome == str(outcome)


async def test_rate_limit_headers(serve: Serve) -> None:
    """429s carry retry-after, retry-after-ms and x-ratelimit-reset-requests; quota 429s do not."""
    s = await serve(SimulatorConfig(faults=Faults(retry_after_s=2.5)))
    s.sim.script("gpt-4o", [429, "tpm", "quota"])
    headers = [(await s.http.post("/v1/chat/completions", json=CHAT)).headers for _ in range(3)]
    for h in headers[:2]:
        assert (h["retry-after"], h["retry-after-ms"]) == ("3", "2500")
        assert h["x-ratelimit-reset-requests"] == "2.5s"
    assert "retry-after" not in headers[2]
    tpm = await s.http.post(
        "/v1/chat/completions", json={**CHAT, "model": "gpt-4"}, headers={"X-Mock-Outcome": "tpm"}
    )
    assert (await tpm.json())["error"]["type"] == "tokens"


async def test_script_is_consumed_in_order_per_model(serve: Serve) -> None:
    """Scripted outcomes apply only to their model, in order, then normal answers resume."""
    s = await serve()
    s.sim.script("gpt-4o", [500, 200, 429])
    s.sim.script("gpt-4o", ["quota"])  # appends
    other = await s.http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4"})
    statuses = [(await s.http.post("/v1/chat/completions", json=CHAT)).status for _ in range(5)]
    assert other.status == 200
    assert statuses == [500, 200, 429, 429, 200]


async def test_mock_outcome_header_beats_script(serve: Serve) -> None:
    """X-Mock-Outcome forces one request's outcome, ahead of the script, which stays queued."""
    s = await serve()
    s.sim.script("gpt-4o", [503])
    forced = s.sdk.with_options(default_headers={"X-Mock-Outcome": "context"})
    with pytest.raises(openai.BadRequestError):
        await forced.chat.completions.create(**CHAT)
    with pytest.raises(openai.InternalServerError):
        await s.sdk.chat.completions.create(**CHAT)


def test_invalid_outcomes_are_rejected() -> None:
    """script() refuses outcomes it cannot produce; header values are parsed the same way."""
    assert parse_outcome(" 429 ") == 429
    assert parse_outcome("Reset") == "reset"
    for bad in ("teapot", 302, 99, "2OO"):
        with pytest.raises(ValueError, match="outcome"):
            Simulator().script("gpt-4o", [bad])


async def test_invalid_mock_header_is_400(serve: Serve) -> None:
    """An unknown X-Mock-Outcome value is the caller's mistake: 400 invalid_request_error."""
    s = await serve()
    answer = await s.http.post("/v1/chat/completions", json=CHAT, headers={"X-Mock-Outcome": "x"})
    assert answer.status == 400
    assert (await answer.json())["error"]["type"] == "invalid_request_error"


async def test_garbage_is_200_with_non_json(serve: Serve) -> None:
    """The "garbage" outcome answers 200 with a JSON content type but a body that does not parse."""
    s = await serve()
    s.sim.script("gpt-4o", ["garbage"])
    answer = await s.http.post("/v1/chat/completions", json=CHAT)
    assert answer.status == 200
    body = await answer.read()
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


async def test_reset_non_streaming_closes_without_response(serve: Serve) -> None:
    """The "reset" outcome on a plain request drops the connection before any response."""
    s = await serve()
    s.sim.script("gpt-4o", ["reset"])
    with pytest.raises(openai.APIConnectionError):
        await s.sdk.chat.completions.create(**CHAT)
    assert (await s.sdk.chat.completions.create(**CHAT)).choices  # server still healthy


async def test_reset_streaming_sends_part_then_aborts(serve: Serve) -> None:
    """The "reset" outcome on a stream sends some chunks, then the connection breaks mid-stream."""
    s = await serve()
    s.sim.script("gpt-4o", ["reset"])
    got: list[Any] = []
    stream = await s.sdk.chat.completions.create(**CHAT, max_tokens=20, stream=True)
    with pytest.raises(openai.APIConnectionError):
        await collect(stream, got)
    assert 1 < len(got) < 10
    assert s.sim.cancelled == 0  # a reset is the server's doing, not a client disconnect


async def test_unknown_model_and_context_window(serve: Serve) -> None:
    """Configured unknown models get 404 model_not_found; prompts over the window get 400."""
    s = await serve(SimulatorConfig(unknown_models={"gpt-9"}, context_window=50))
    with pytest.raises(openai.NotFoundError) as missing:
        await s.sdk.chat.completions.create(**{**CHAT, "model": "gpt-9"})
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        await s.sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "z" * 400}]
        )
    assert too_long.value.code == "context_length_exceeded"
    assert "50 tokens" in too_long.value.message


async def test_bad_requests(serve: Serve) -> None:
    """Unparseable JSON and missing required parameters are 400 invalid_request_error."""
    s = await serve()
    bad_json = await s.http.post(
        "/v1/chat/completions", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    missing = await s.http.post("/v1/chat/completions", json={"model": "gpt-4o"})
    assert (bad_json.status, missing.status) == (400, 400)
    assert (await missing.json())["error"]["param"] == "messages"
    assert [r.outcome for r in s.sim.seen] == ["400", "400"]


# --- random faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "stream", "expected"),
    [
        (Faults(rate_429=1.0), False, "429"),
        (Faults(rate_500=1.0), False, "500"),
        (Faults(rate_503=1.0), False, "503"),
        (Faults(rate_timeout=1.0), False, "timeout"),
        (Faults(rate_reset=1.0), True, "reset"),
        (Faults(rate_reset=1.0), False, "200"),  # resets only hit streams
        (Faults(), False, "200"),
        (Faults(), True, "200"),
    ],
)
async def test_fault_rates_one_always_zero_never(
    serve: Serve, faults: Faults, stream: bool, expected: str
) -> None:
    """A fault rate of 1.0 hits every request and 0 hits none."""
    s = await serve(SimulatorConfig(faults=faults, hang_s=0.0))
    for _ in range(20):
        answer = await s.http.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        try:
            await answer.read()
        except aiohttp.ClientPayloadError:
            assert expected == "reset"
    assert {r.outcome for r in s.sim.seen} == {expected}


async def test_fault_rates_are_seeded_and_model_faults_override(serve: Serve) -> None:
    """Partial fault rates give the same sequence per seed; model_faults replace the default."""
    config = SimulatorConfig(faults=Faults(rate_500=0.5), model_faults={"gpt-4": Faults()})
    runs = []
    for _ in range(2):
        s = await serve(config)
        statuses = [
            (await s.http.post("/v1/chat/completions", json=CHAT)).status for _ in range(30)
        ]
        runs.append(statuses)
        others = [
            (await s.http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4"})).status
            for _ in range(10)
        ]
        assert set(others) == {200}
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


# --- latency, hangs and disconnects ------------------------------------------------------------


async def test_seeded_latency_is_reproducible(serve: Serve) -> None:
    """Latencies are lognormal around latency_ms and identical for the same seed."""
    samples = []
    for seed in (3, 3, 4):
        s = await serve(SimulatorConfig(seed=seed, latency_ms=0.5))
        await asyncio.gather(*(s.http.get("/v1/models") for _ in range(40)))
        samples.append(sorted(r.latency_s for r in s.sim.seen))
    assert samples[0] == samples[1] != samples[2]
    assert 0.0003 < statistics.median(samples[0]) < 0.0008


@pytest.mark.parametrize("handler_cancellation", [False, True])
async def test_client_disconnect_cancels_upstream_work(
    serve: Serve, handler_cancellation: bool
) -> None:
    """A client giving up on a hung request ends the handler: active drops, cancelled counts it."""
    s = await serve(SimulatorConfig(hang_s=30.0), handler_cancellation=handler_cancellation)
    s.sim.script("gpt-4o", ["timeout"])
    with pytest.raises(openai.APITimeoutError):
        await s.sdk.chat.completions.create(**CHAT, timeout=0.2)
    await eventually(lambda: s.sim.active == 0)
    assert s.sim.cancelled == 1


# --- recording, pass-through and routing -------------------------------------------------------


async def test_seen_records_requests(serve: Serve) -> None:
    """Each request is recorded with method, path, lower-cased headers, body and model; bounded."""
    s = await serve(SimulatorConfig(record_limit=3))
    await s.sdk.chat.completions.create(**CHAT, user="alice")
    record = s.sim.seen[-1]
    assert (record.method, record.path, record.model) == ("POST", "/v1/chat/completions", "gpt-4o")
    assert record.headers["authorization"] == "Bearer sk-test"
    assert record.body is not None
    assert record.body["user"] == "alice"
    assert record.outcome == "200"
    for _ in range(4):
        await s.http.get("/v1/models")
    assert len(s.sim.seen) == 3
    assert s.sim.active == 0


async def test_echo_passthrough_and_not_found(serve: Serve) -> None:
    """/v1/echo mirrors the request; other OpenAI API paths answer passthrough; non-/v1 paths
    404."""
    s = await serve()
    echo = await (await s.http.post("/v1/echo?x=1", json={"a": 1}, headers={"X-Test": "t"})).json()
    assert echo["body"] == {"a": 1}
    assert echo["query"] == {"x": "1"}
    assert echo["headers"]["x-test"] == "t"
    text = await (await s.http.post("/v1/echo", data=b"plain")).json()
    assert text["body"] == "plain"
    for method in ("GET", "POST", "DELETE"):
        answer = await s.http.request(method, "/v1/files/abc")
        assert await answer.json() == {
            "object": "passthrough",
            "method": method,
            "path": "/v1/files/abc",
        }
    missing = await s.http.get("/healthz")
    assert missing.status == 404
    assert (await missing.json())["error"]["message"] == "Invalid URL (GET /healthz)"
    forced = await s.http.get("/v1/files", headers={"X-Mock-Outcome": "503"})
    assert forced.status == 503


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nope"), ("POST", "/v1/sidecar/report"), ("GET", "/v1/sidecar/report")],
)
async def test_paths_openai_does_not_have_are_404(serve: Serve, method: str, path: str) -> None:
    """A /v1 path outside the OpenAI API answers 404 with OpenAI's error body, not a 200."""
    s = await serve()
    answer = await s.http.request(method, path)
    assert answer.status == 404
    error = (await answer.json())["error"]
    assert error == {
        "message": f"Invalid URL ({method} {path})",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert s.sim.seen[-1].path == path


async def test_models_retrieve(serve: Serve) -> None:
    """GET /v1/models/{id} returns the model object for a known model, 404 model_not_found
    otherwise (also for a model listed in unknown_models)."""
    s = await serve(SimulatorConfig(unknown_models={"gpt-4"}))
    model = await s.sdk.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "system")
    assert model.created > 0
    assert s.sim.seen[-1].model == "gpt-4o"
    for missing in ("gpt-9", "gpt-4"):
        with pytest.raises(openai.NotFoundError) as caught:
            await s.sdk.models.retrieve(missing)
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "model_not_found"
        assert missing in caught.value.body["message"]
        assert s.sim.seen[-1].outcome == "404"


async def test_models_retrieve_through_the_sidecar(client: openai.AsyncOpenAI) -> None:
    """Behind the sidecar (as in the demo), models.retrieve shows the real model, not id=None."""
    model = await client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object) == ("gpt-4o-mini", "model")
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")


async def test_run_simulator_says_listening_only_once_bound(unused_tcp_port: int) -> None:
    """run_simulator calls on_listening after the socket is bound: a connect there succeeds."""
    listening = asyncio.Event()

    def on_listening() -> None:
        # The kernel completes the handshake on a listening socket without the loop's help.
        with socket.create_connection(("127.0.0.1", unused_tcp_port), timeout=2):
            listening.set()

    task = asyncio.create_task(
        run_simulator("127.0.0.1", unused_tcp_port, SimulatorConfig(), on_listening=on_listening)
    )
    await asyncio.wait_for(listening.wait(), 10)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{unused_tcp_port}/v1/models") as answer,
    ):
        assert answer.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_simulator_serves_until_cancelled(unused_tcp_port: int) -> None:
    """run_simulator serves the app on host:port and shuts down cleanly when cancelled."""
    task = asyncio.create_task(run_simulator("127.0.0.1", unused_tcp_port, SimulatorConfig()))
    url = f"http://127.0.0.1:{unused_tcp_port}/v1/models"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as answer:
                    assert answer.status == 200
                    break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
