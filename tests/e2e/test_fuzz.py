"""Property-based fuzzing of a real sidecar in front of the simulator, over loopback HTTP.

Bodies, headers and paths are generated (derandomized, so CI runs the same examples every
time) and sent as raw bytes. Whatever arrives, the sidecar:

- answers no 5xx of its own (the simulator, faults off, never fails: a 5xx needs an upstream
  call, and is never INTERNAL);
- answers every error it makes in the OpenAI envelope (code, message, request id), and passes
  the upstream's own errors through as JSON errors;
- sends nothing upstream outside ``/v1``;
- logs nothing at WARNING or above, and keeps answering (``/healthz``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.openai_api import MODEL_ENDPOINTS
from sidecar.simulator import MODELS, Simulator
from tests.e2e.test_bad_input import RawReply, http_request, send_raw

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    database=None,
    # One sidecar and simulator serve all examples of a test, as they would serve many clients.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Errors that only an upstream can cause.
UPSTREAM_CODES = {"NETWORK", "MODEL_UNAVAILABLE", "TIMEOUT"}

# --- what is generated ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool"]), "content": json_values}
    ),
    max_size=3,
)
BODY_KEYS = [
    "model", "messages", "stream", "stream_options", "user", "safety_identifier", "input",
    "prompt", "n", "size", "quality", "max_tokens", "tools", "metadata",
]  # fmt: skip
models = st.sampled_from(MODELS) | st.text(max_size=20)
chat_like = st.fixed_dictionaries(
    {"model": models, "messages": messages},
    optional={
        "stream": st.booleans() | json_values,
        "stream_options": json_values | st.fixed_dictionaries({"include_usage": st.booleans()}),
        "user": json_values,
        "input": json_values,
        "prompt": json_values,
        "n": json_values,
    },
)
any_object = st.dictionaries(st.sampled_from(BODY_KEYS) | st.text(max_size=6), json_values)
# The standard library writes integers of any size (orjson stops at 64 bits).
bodies = st.one_of(chat_like, any_object, json_values).map(lambda v: json.dumps(v).encode())
bodies |= st.binary(max_size=64)
content_types = st.sampled_from(
    [None, "application/json", "application/json; charset=utf-8", "text/plain",
     "application/x-www-form-urlencoded", "APPLICATION/JSON", "multipart/form-data"]
)  # fmt: skip

# Header values as bytes: anything HTTP allows in a value (visible ASCII, tab, obs-text).
header_bytes = st.binary(max_size=40).map(
    lambda raw: bytes(b for b in raw if b == 9 or 32 <= b <= 126 or b >= 128).strip()
)
header_values = header_bytes | st.sampled_from(
    [b"high", b"batch", b"normal", b"chat", b"embedding", b"no-cache", b"no-store", b"sim",
     b"Bearer x", b"application/json", b"gzip", b"identity", b"req-1", b"a" * 200]
)  # fmt: skip
HEADER_NAMES = [
    "X-Request-Id", "X-Sidecar-User", "X-Sidecar-Operation", "X-Sidecar-Priority",
    "X-Sidecar-Provider", "Cache-Control", "Authorization", "Accept", "OpenAI-Beta",
    "Idempotency-Key", "traceparent", "tracestate", "X-Stainless-Lang", "Content-Type",
    "Content-Encoding",
]  # fmt: skip
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=5)

# Paths from pieces that have tricked proxies: dots and their escapes, escaped separators,
# double escapes, escapes that are not UTF-8.
SEGMENTS = [
    "..", ".", "", "%2e%2e", "%2E", "%2e", "..%2f", "%2f", "%2F", "%252e%252e", "%25", "%00",
    "%ff", "%c3%a9", "%5c", "v1", "chat", "completions", "files", "models", "responses", "x",
    "~", ":", "@", "!", "*", ";", "=", "+", "a.b", "...",
]  # fmt: skip
paths = st.builds(
    lambda prefix, parts, query: prefix + "/".join(parts) + query,
    st.sampled_from(["/v1/", "/v1/", "/", "/%76%31/", "//v1/", "/v1/../"]),
    st.lists(st.sampled_from(SEGMENTS), max_size=6),
    st.sampled_from(["", "?limit=2", "?a=%26b&c=%2e%2e", "?x=%ff"]),
)
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]


# --- the properties -----------------------------------------------------------------------------


async def exchange_checked(server: TestServer, sim: Simulator, request: bytes) -> RawReply:
    """Send one request and check what every reply must satisfy."""
    before = len(sim.seen)
    reply = await send_raw(server, request)
    upstream = list(sim.seen)[before:]
    assert all(seen.path.startswith("/v1/") for seen in upstream), [s.path for s in upstream]
    if reply.status >= 500:
        assert upstream, f"a {reply.status} no upstream call caused"
        assert reply.error()["code"] in UPSTREAM_CODES
    elif reply.status >= 400 and request.startswith(b"HEAD "):
        assert reply.headers["x-request-id"]  # no body to check
    elif reply.status >= 400 and not upstream:
        reply.error()  # the sidecar's own: the whole envelope
    elif reply.status >= 400:
        error = orjson.loads(reply.body)["error"]  # the upstream's, passed through: still JSON
        assert isinstance(error, dict)
        assert "message" in error
    return reply


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


async def still_healthy(server: TestServer, caplog: pytest.LogCaptureFixture) -> None:
    reply = await send_raw(server, http_request("GET", "/healthz"))
    assert reply.status == 200
    # The one warning a fuzzed model name may rightly raise is the operator's price alarm.
    alarms = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name != "sidecar.pipeline.costs"
    ]
    assert not alarms


@FUZZ
@given(
    path=st.sampled_from(sorted(MODEL_ENDPOINTS)),
    body=bodies,
    content_type=content_types,
)
async def test_fuzzed_bodies(
    sidecar: TestServer,
    sim: Simulator,
    quiet: pytest.LogCaptureFixture,
    path: str,
    body: bytes,
    content_type: str | None,
) -> None:
    """Any body, to any model endpoint, with any Content-Type: a 4xx in the envelope or an
    answer from the upstream."""
    extra: dict[str, str | bytes] = {} if content_type is None else {"Content-Type": content_type}
    await exchange_checked(sidecar, sim, http_request("POST", f"/v1/{path}", extra, body))
    await still_healthy(sidecar, quiet)


@FUZZ
@given(
    fuzzed=headers,
    target=st.sampled_from(
        [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/embeddings")]
    ),
    stream=st.booleans(),
)
async def test_fuzzed_headers(
    sidecar: TestServer,
    sim: Simulator,
    quiet: pytest.LogCaptureFixture,
    fuzzed: dict[str, bytes],
    target: tuple[str, str],
    stream: bool,
) -> None:
    """Any bytes HTTP allows in the headers the sidecar reads or forwards, on a valid request."""
    method, path = target
    body: dict[str, Any] = (
        {"model": "text-embedding-3-small", "input": "hi"}
        if path.endswith("embeddings")
        else {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )
    raw = orjson.dumps(body) if method == "POST" else b""
    reply = await exchange_checked(sidecar, sim, http_request(method, path, dict(fuzzed), raw))
    request_id = reply.headers["x-request-id"]
    assert len(request_id) <= 128
    await still_healthy(sidecar, quiet)


@FUZZ
@given(method=st.sampled_from(METHODS), path=paths)
async def test_fuzzed_paths(
    sidecar: TestServer,
    sim: Simulator,
    quiet: pytest.LogCaptureFixture,
    method: str,
    path: str,
) -> None:
    """Any path of dots, escapes and separators: nothing outside /v1 reaches the upstream."""
    await exchange_checked(sidecar, sim, http_request(method, path))
    await still_healthy(sidecar, quiet)
