"""A client's mistake gets a 400-class answer in the OpenAI envelope, never a 500, never plain
text, never an ERROR in the log; and nothing it sends reaches the upstream outside ``/v1``.

Bad input the official SDKs cannot express (bytes that are not UTF-8, dot segments, broken
gzip) goes over a raw socket, exactly as written here.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp.test_utils import TestServer

from sidecar.inbound import upstream_path
from sidecar.runtime import Overrides
from sidecar.server import create_app
from sidecar.simulator import Simulator
from tests.helpers import MESSAGES, MakeSidecar, ServerFactory, Sleeps, sidecar_settings

CHAT = {"model": "gpt-4o", "messages": MESSAGES}
MINTED_ID = re.compile(r"[0-9a-f]{32}")


# --- raw HTTP ---------------------------------------------------------------------------------


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def error(self) -> dict[str, Any]:
        """The envelope's error object, checked to be one."""
        assert self.headers["content-type"].startswith("application/json"), self.body[:200]
        parsed = orjson.loads(self.body)
        assert set(parsed) == {"error"}
        error: dict[str, Any] = parsed["error"]
        assert {"message", "type", "code", "request_id"} <= set(error)
        assert error["request_id"] == self.headers["x-request-id"]
        return error


def http_request(
    method: str,
    target: str | bytes,
    headers: Mapping[str, str | bytes] | None = None,
    body: bytes = b"",
) -> bytes:
    """One HTTP/1.1 request as bytes; the connection closes after the reply."""
    lines = [method.encode() + b" " + _bytes(target) + b" HTTP/1.1", b"Host: sidecar"]
    lines += [name.encode() + b": " + _bytes(value) for name, value in (headers or {}).items()]
    lines += [b"Connection: close", b"Content-Length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


async def send_raw(server: TestServer, request: bytes) -> RawReply:
    """Send the bytes as they are and read the whole reply (the server closes after it)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return RawReply(int(status_line.split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


async def post_json(server: TestServer, body: object, **headers: str | bytes) -> RawReply:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    request = http_request(
        "POST", "/v1/chat/completions", {"Content-Type": "application/json", **headers}, raw
    )
    return await send_raw(server, request)


@pytest.fixture(autouse=True)
def no_alarms(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """A client's mistake is not an incident: nothing at WARNING or above is logged for it."""
    caplog.set_level(logging.INFO)
    yield caplog
    alarms = [f"{r.name} {r.levelname}: {r.getMessage()}" for r in caplog.records]
    alarms = [
        a for a, r in zip(alarms, caplog.records, strict=True) if r.levelno >= logging.WARNING
    ]
    assert not alarms


# --- 11: paths stay under /v1 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("PUT", "/v1/%2e%2e/%2e%2e/secret"),
        ("GET", "/v1/..%2f..%2fsecret"),
        ("GET", "/v1/%2E%2E"),
        ("GET", "/v1/files/../../secret"),
        ("POST", "/v1/./%2e%2e/admin"),
        ("GET", "/v1/%2e%2e%5csecret"),
        ("GET", "/v1/files/%00"),
        ("GET", "/v1/%ff"),
    ],
)
async def test_paths_that_leave_v1_are_refused(
    sidecar: TestServer, sim: Simulator, method: str, target: str
) -> None:
    """A path that resolves outside /v1 once decoded (or cannot be decoded) is a 400 that never
    reaches the upstream."""
    reply = await send_raw(sidecar, http_request(method, target))
    assert reply.status == 400
    error = reply.error()
    assert (error["code"], error["reason"]) == ("INVALID_INPUT", "bad_path")
    assert not sim.seen


@pytest.mark.parametrize(
    ("target", "seen"),
    [
        ("/v1/files/%252e%252e", "/v1/files/%2e%2e"),  # decoded once here, once upstream
        ("/v1/%252e%252e", "/v1/%2e%2e"),  # not a dot segment upstream either (its 404)
        ("/v1/files/%25ff/content", "/v1/files/%ff/content"),
        ("/v1/files/a%3Fb%23c", "/v1/files/a?b#c"),
        ("/v1/%76ector_stores/vs_1/files", "/v1/vector_stores/vs_1/files"),
        ("/v1/./models/../files//f1/", "/v1/files/f1"),
        ("/v1/../v1/files", "/v1/files"),
        ("/v1/files/%C3%A9t%C3%A9", "/v1/files/été"),
    ],
)
async def test_paths_are_decoded_once_and_forwarded_so(
    sidecar: TestServer, sim: Simulator, target: str, seen: str
) -> None:
    """The upstream decodes the forwarded path to what the sidecar decoded, never once more."""
    reply = await send_raw(sidecar, http_request("GET", target))
    assert reply.status < 500
    assert sim.seen[-1].path == seen


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/v1/chat/completions", "chat/completions"),
        ("/v1/", ""),
        ("/v1/files/file-abc_1.jsonl", "files/file-abc_1.jsonl"),
        ("/v1/models/ft:gpt-4o:org:id", "models/ft:gpt-4o:org:id"),
        ("/v1/chat%2Fcompletions", "chat/completions"),
        ("/v1//chat/./completions/", "chat/completions"),
        ("/v1/a%20b/%25/%2F", "a%20b/%25"),
        ("/v1/.well-known/x", ".well-known/x"),
    ],
)
def test_upstream_path_normalises_once(raw: str, path: str) -> None:
    """The path below /v1 is decoded once, dot and empty segments resolved, and re-escaped."""
    assert upstream_path(raw) == path


async def test_a_disguised_model_endpoint_is_still_checked(sidecar: TestServer) -> None:
    """Dot segments, doubled slashes or an escaped slash do not turn a model call into a
    pass-through that skips the model checks."""
    for target in ("/v1/chat/./completions", "/v1//chat/completions", "/v1/chat%2fcompletions"):
        body = orjson.dumps({"messages": MESSAGES})
        headers = {"Content-Type": "application/json"}
        reply = await send_raw(sidecar, http_request("POST", target, headers, body))
        assert reply.status == 400
        assert reply.error()["param"] == "model"


# --- 12: the model name -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["a\u0001b", "gpt-4o\n", "x\u0085y", "m" * 257, "m" * 900_000])
async def test_model_names_with_control_characters_or_too_long_are_refused(
    client: openai.AsyncOpenAI, sim: Simulator, model: str
) -> None:
    """SPEC: more than 256 characters or a control character is 400 INVALID_INPUT on 'model'."""
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=model, messages=MESSAGES)
    error = caught.value.response.json()["error"]
    assert (error["code"], error["param"]) == ("INVALID_INPUT", "model")
    assert "x-sidecar-model" not in caught.value.response.headers
    assert not sim.seen


async def test_a_model_name_of_256_characters_is_fine(client: openai.AsyncOpenAI) -> None:
    """The limit is inclusive, and non-ASCII names are fine."""
    for model in ("m" * 256, "modèle-ü"):
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        assert raw.http_response.status_code == 200


# --- 13: body shapes that used to be a 500 ----------------------------------------------------


@pytest.mark.parametrize("options", [[1], "include_usage", 3, True])
async def test_stream_options_must_be_an_object(sidecar: TestServer, options: object) -> None:
    """stream_options that is not an object or null is a 400 naming the param, not a 500."""
    reply = await post_json(sidecar, {**CHAT, "stream": True, "stream_options": options})
    assert reply.status == 400
    error = reply.error()
    assert (error["code"], error["param"]) == ("INVALID_INPUT", "stream_options")


def with_nested(body: dict[str, Any], depth: int) -> bytes:
    """The body with a "metadata" value nested ``depth`` arrays deep (too deep for orjson to
    write, so the JSON is put together by hand)."""
    return orjson.dumps(body)[:-1] + b',"metadata":' + b"[" * depth + b"]" * depth + b"}"


async def test_a_stream_nested_too_deep_to_re_encode_is_a_400(
    sidecar: TestServer, sim: Simulator
) -> None:
    """A streamed body is re-encoded (usage options): nesting orjson cannot write is a 400."""
    reply = await post_json(sidecar, with_nested({**CHAT, "stream": True}, 300))
    assert reply.status == 400
    error = reply.error()
    assert (error["code"], error["reason"]) == ("INVALID_INPUT", "too_deep")
    assert "254" in error["message"]
    assert not sim.seen


async def test_a_body_nested_too_deep_for_a_fallback_is_a_400(
    upstream: TestServer, make_sidecar: MakeSidecar, sim: Simulator
) -> None:
    """A fallback re-encodes the body with the next model: too deep is a 400, not a 500."""
    server = await make_sidecar(
        str(upstream.make_url("/v1")),
        operations={"chat": {"max_attempts": 1, "fallbacks": ["gpt-4o", "gpt-4"]}},
    )
    sim.script("gpt-4o", [503])
    reply = await post_json(server, with_nested(CHAT, 300))
    assert reply.status == 400
    assert reply.error()["reason"] == "too_deep"


async def test_nesting_orjson_can_write_is_forwarded(sidecar: TestServer, sim: Simulator) -> None:
    """Deep but re-encodable bodies stream as usual."""
    reply = await post_json(sidecar, with_nested({**CHAT, "stream": True}, 250))
    assert reply.status == 200
    assert sim.seen[-1].body is not None


async def test_a_body_that_is_not_the_gzip_it_claims_is_a_400(
    sidecar: TestServer, sim: Simulator
) -> None:
    """Content-Encoding: gzip on a body that is not gzip is a 400 saying so, not a 500."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    request = http_request("POST", "/v1/chat/completions", headers, orjson.dumps(CHAT))
    reply = await send_raw(sidecar, request)
    assert reply.status == 400
    error = reply.error()
    assert (error["code"], error["reason"]) == ("INVALID_INPUT", "unreadable_body")
    assert "gzip" in error["message"]
    assert not sim.seen


# --- 14: bytes that are not UTF-8 in headers --------------------------------------------------


async def test_a_request_id_that_is_not_utf8_still_gets_an_enveloped_error(
    sidecar: TestServer,
) -> None:
    """A non-UTF-8 X-Request-Id on a request that fails is replaced, and the error enveloped."""
    reply = await post_json(sidecar, {"messages": MESSAGES}, **{"X-Request-Id": b"a\xffb"})
    assert reply.status == 400
    assert MINTED_ID.fullmatch(reply.error()["request_id"])


async def test_an_admin_token_that_is_not_utf8_is_a_401(
    upstream: TestServer, make_sidecar: MakeSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Bearer token with bytes that are not UTF-8 is refused with 401 in the envelope."""
    monkeypatch.setenv("SIDECAR_ADMIN_TOKEN", "admin-secret")
    server = await make_sidecar(str(upstream.make_url("/v1")))
    request = http_request("GET", "/sidecar/report", {"Authorization": b"Bearer \xff"})
    reply = await send_raw(server, request)
    assert reply.status == 401
    assert reply.error()["code"] == "UNAUTHORIZED"
    good = http_request("GET", "/sidecar/report", {"Authorization": "Bearer admin-secret"})
    assert (await send_raw(server, good)).status == 200


# --- 15: a gzip body is forwarded decoded -------------------------------------------------------


async def test_a_gzip_body_reaches_the_upstream_as_plain_json(
    sidecar: TestServer, sim: Simulator
) -> None:
    """The sidecar decodes a gzip body; the upstream gets the JSON and no Content-Encoding."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    request = http_request(
        "POST", "/v1/chat/completions", headers, gzip.compress(orjson.dumps(CHAT))
    )
    reply = await send_raw(sidecar, request)
    assert reply.status == 200
    seen = sim.seen[-1]
    assert seen.body == CHAT
    assert "content-encoding" not in seen.headers


# --- 16: HEAD on a model endpoint -----------------------------------------------------------


async def test_head_on_a_model_endpoint_is_not_a_model_call(
    sidecar: TestServer, sim: Simulator
) -> None:
    """HEAD needs no body or model and is forwarded as is; never a 502."""
    reply = await send_raw(sidecar, http_request("HEAD", "/v1/chat/completions"))
    assert reply.status == 200
    assert reply.headers["x-request-id"]
    assert sim.seen[-1].method == "HEAD"


# --- 17: the client's request id --------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "kept"),
    [
        ("req-ABC.123:xyz_9", True),
        ("r" * 128, True),
        ("r" * 129, False),
        ("x" * 8000, False),
        ("a b", False),
        ("a/b", False),
        ("ünïcode", False),
        ("", False),
    ],
)
async def test_a_client_request_id_is_kept_only_when_it_is_a_short_token(
    sidecar: TestServer, sim: Simulator, offered: str, kept: bool
) -> None:
    """SPEC: kept when at most 128 of [A-Za-z0-9._:-], else a new one, echoed and sent upstream."""
    reply = await send_raw(sidecar, http_request("GET", "/v1/models", {"X-Request-Id": offered}))
    assert reply.status == 200
    request_id = reply.headers["x-request-id"]
    assert (request_id == offered) is kept
    if not kept:
        assert MINTED_ID.fullmatch(request_id)
    assert sim.seen[-1].headers["x-request-id"] == request_id


# --- 18: the log, and connections that never finish their headers ---------------------------


async def test_malformed_http_is_one_info_line(
    sidecar: TestServer, no_alarms: pytest.LogCaptureFixture
) -> None:
    """aiohttp's "Error handling request" for bytes that are not HTTP is one INFO line, with no
    traceback: a client's mistake pages nobody."""
    reply = await send_raw(sidecar, b"GET /v1/mod els HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.status == 400
    records = [r for r in no_alarms.records if r.name == "aiohttp.server"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert records[0].exc_info is None
    assert "\n" not in records[0].getMessage()


@pytest.fixture
async def impatient_sidecar(
    upstream: TestServer, aiohttp_server: ServerFactory, provider_key: str
) -> TestServer:
    app = create_app(
        sidecar_settings(str(upstream.make_url("/v1")), limits={"header_timeout_s": 0.3}),
        Overrides(sleep=Sleeps()),
    )
    return await aiohttp_server(app)


async def read_until_closed(reader: asyncio.StreamReader, within_s: float) -> bytes:
    return await asyncio.wait_for(reader.read(), within_s)


async def test_a_connection_that_never_finishes_its_headers_is_closed(
    impatient_sidecar: TestServer,
) -> None:
    """A partial request line is not held forever: the server hangs up after the header timeout."""
    reader, writer = await asyncio.open_connection(impatient_sidecar.host, impatient_sidecar.port)
    started = time.monotonic()
    writer.write(b"GET /v1/mod")
    assert await read_until_closed(reader, 5) == b""
    assert time.monotonic() - started < 5
    writer.close()
    await writer.wait_closed()


async def test_trickling_header_bytes_does_not_extend_the_timeout(
    impatient_sidecar: TestServer,
) -> None:
    """A byte at a time (slowloris) does not restart the clock: the timeout counts from the
    start of the request, not from the last byte."""
    reader, writer = await asyncio.open_connection(impatient_sidecar.host, impatient_sidecar.port)
    started = time.monotonic()
    closed = False
    for byte in b"GET /v1/models HTTP/1.1\r\nX-Slow: " + b"a" * 200:  # bounded
        writer.write(bytes([byte]))
        try:
            # Waiting for the server to close is the pause between bytes.
            if await asyncio.wait_for(reader.read(), 0.05) == b"":
                closed = True
                break
        except TimeoutError:
            continue
    assert closed
    assert time.monotonic() - started < 5
    writer.close()
    await writer.wait_closed()


async def test_a_slow_answer_is_not_cut(impatient_sidecar: TestServer, sim: Simulator) -> None:
    """The timeout is for headers that do not come: an upstream slower than it is waited for,
    and the connection then serves its next request."""
    sim.config.latency_ms, sim.config.latency_sigma = 600, 0.0
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(impatient_sidecar.make_url("/v1/models")) as resp:
                assert resp.status == 200


# --- 23: the wrong Content-Type ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_model_call_with_a_non_json_content_type_says_so(
    sidecar: TestServer, content_type: str
) -> None:
    """The message names the Content-Type that was sent and the one to send."""
    request = http_request(
        "POST", "/v1/chat/completions", {"Content-Type": content_type}, orjson.dumps(CHAT)
    )
    reply = await send_raw(sidecar, request)
    assert reply.status == 400
    error = reply.error()
    assert error["reason"] == "unsupported_content_type"
    assert content_type in error["message"]
    assert "application/json" in error["message"]


async def test_json_content_types_are_case_insensitive(sidecar: TestServer) -> None:
    """Media types ignore case, and +json types are JSON."""
    for content_type in ("Application/JSON; charset=utf-8", "application/vnd.api+json"):
        reply = await post_json(sidecar, CHAT, **{"Content-Type": content_type})
        assert reply.status == 200


# --- 26: errors outside /v1 -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/foo", "/v1", "/sidecar/nope", "/"])
async def test_unknown_paths_are_a_404_in_the_envelope(sidecar: TestServer, target: str) -> None:
    """A path the sidecar does not serve is a 404 in the envelope listing the ones it does."""
    reply = await send_raw(sidecar, http_request("GET", target))
    assert reply.status == 404
    error = reply.error()
    assert error["type"] == "invalid_request_error"
    assert "/v1/*" in error["message"]
    assert "/healthz" in error["message"]


async def test_a_wrong_method_is_a_405_in_the_envelope(sidecar: TestServer) -> None:
    """POST on a GET endpoint is a 405 in the envelope, with Allow."""
    reply = await send_raw(sidecar, http_request("POST", "/healthz"))
    assert reply.status == 405
    assert "GET" in reply.headers["allow"]
    assert reply.error()["reason"] == "method_not_allowed"


async def test_the_sdk_raises_not_found_for_an_unknown_path(sidecar: TestServer) -> None:
    """The envelope makes the SDK raise its usual NotFoundError."""
    async with openai.AsyncOpenAI(
        base_url=str(sidecar.make_url("/")), api_key="k", max_retries=0
    ) as sdk:
        with pytest.raises(openai.NotFoundError):
            await sdk.get("/nope", cast_to=object)


async def test_a_bug_in_an_endpoint_is_a_500_in_the_envelope(
    sidecar: TestServer, monkeypatch: pytest.MonkeyPatch, no_alarms: pytest.LogCaptureFixture
) -> None:
    """Our own bug answers 500 INTERNAL in the envelope (and is logged as the error it is)."""

    def broken(*args: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr("sidecar.server.build_report", broken)
    reply = await send_raw(sidecar, http_request("GET", "/sidecar/report"))
    assert reply.status == 500
    assert reply.error()["code"] == "INTERNAL"
    assert "RuntimeError" not in reply.body.decode()
    errors = [r for r in no_alarms.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    no_alarms.clear()  # expected here
