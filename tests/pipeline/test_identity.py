"""Identify: user, operation, priority and model per SPEC "Request identity"."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config import settings_from_dict
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange
from sidecar.openai_api import operation_for_path
from sidecar.pipeline.base import compose
from sidecar.pipeline.body import ReadBody
from sidecar.pipeline.identity import Identify
from tests.helpers import Recorder, exchange

SETTINGS = settings_from_dict({})


async def identify(
    body: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
    path: str = "chat/completions",
) -> Exchange:
    recorder = Recorder()
    handler = compose([ReadBody(1 << 20), Identify(SETTINGS)], recorder)
    await handler(exchange(path=path, body=body, headers=headers))
    return recorder.seen[0]


CHAT = {"model": "gpt-4o", "messages": []}


async def test_user_comes_from_the_header_first() -> None:
    """X-Sidecar-User wins over the body's user field."""
    ex = await identify({**CHAT, "user": "body-user"}, {"X-Sidecar-User": "header-user"})
    assert ex.user == "header-user"


@pytest.mark.parametrize(
    ("body", "user"),
    [
        ({**CHAT, "user": "u1"}, "u1"),
        ({**CHAT, "safety_identifier": "s1"}, "s1"),
        (CHAT, "anonymous"),
        ({**CHAT, "user": 42}, "anonymous"),
    ],
)
async def test_user_falls_back_to_the_body_then_anonymous(body: dict[str, Any], user: str) -> None:
    """Without the header: body user, then safety_identifier, then anonymous."""
    assert (await identify(body)).user == user


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("chat/completions", "chat"),
        ("responses", "chat"),
        ("completions", "chat"),
        ("images/generations", "image-generation"),
        ("images/edits", "image-generation"),
        ("embeddings", "embedding"),
        ("audio/transcriptions", "audio"),
        ("models", "models"),
        ("vector_stores/vs_1/files", "vector_stores"),
        ("made-up-path-4711/x", "other"),
        ("", "other"),
    ],
)
def test_operation_from_path(path: str, operation: str) -> None:
    """Paths map to operations as SPEC lists; API paths use their first segment, others 'other'."""
    assert operation_for_path(path) == operation


async def test_operation_header_must_name_a_configured_operation() -> None:
    """An unknown X-Sidecar-Operation is a 400 listing the configured ones."""
    ex = await identify(CHAT, {"X-Sidecar-Operation": "evaluation"})
    assert ex.operation == "evaluation"
    assert ex.op.slow_ms == 3000
    with pytest.raises(SidecarError) as caught:
        await identify(CHAT, {"X-Sidecar-Operation": "nonsense"})
    assert "evaluation" in caught.value.message


async def test_priority_header_and_its_validation() -> None:
    """Priority is high|normal|batch from the header, default normal; anything else is a 400."""
    assert (await identify(CHAT)).priority == "normal"
    assert (await identify(CHAT, {"X-Sidecar-Priority": "BATCH"})).priority == "batch"
    with pytest.raises(SidecarError):
        await identify(CHAT, {"X-Sidecar-Priority": "urgent"})


async def test_model_stream_and_include_usage_are_read_from_the_body() -> None:
    """The stage records the requested model and the client's own streaming options."""
    ex = await identify({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert (ex.model, ex.stream, ex.client_wants_usage) == ("gpt-4o", True, True)
    plain = await identify({**CHAT, "stream": "yes"})
    assert (plain.stream, plain.client_wants_usage) == (False, False)


async def test_model_endpoints_require_a_model() -> None:
    """A model endpoint with no model is rejected before any upstream call."""
    with pytest.raises(SidecarError) as caught:
        await identify({"messages": []})
    assert caught.value.param == "model"


async def test_other_paths_need_no_model() -> None:
    """Pass-through paths are not validated."""
    ex = await identify(None, path="files")
    assert ex.model is None
    assert ex.operation == "files"


async def run_identify(
    body: dict[str, Any] | bytes | None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Exchange:
    recorder = Recorder()
    handler = compose([ReadBody(1 << 20), Identify(SETTINGS)], recorder)
    await handler(exchange(body=body, headers=headers, method=method))
    return recorder.seen[0]


@pytest.mark.parametrize(
    ("model", "valid"),
    [
        ("gpt-4o", True),
        ("m" * 256, True),
        ("ft:gpt-4o:org:custom:id", True),
        ("modèle", True),
        ("m" * 257, False),
        ("a\u0001b", False),
        ("gpt-4o\r\nX-Injected: 1", False),
        ("tab\tmodel", False),
        ("del\x7f", False),
        ("c1\x85", False),
    ],
)
async def test_model_names_are_bounded_and_free_of_control_characters(
    model: str, valid: bool
) -> None:
    """SPEC: a model over 256 characters or with a control character is 400 on 'model'."""
    if valid:
        assert (await run_identify({**CHAT, "model": model})).model == model
        return
    with pytest.raises(SidecarError) as caught:
        await run_identify({**CHAT, "model": model})
    assert (caught.value.code, caught.value.param) == (ErrorCode.INVALID_INPUT, "model")


@pytest.mark.parametrize("options", [[], ["include_usage"], "include_usage", 1, 0.5, False])
async def test_stream_options_must_be_an_object_or_null(options: object) -> None:
    """Anything but an object or null is a 400 on 'stream_options', not a crash later."""
    with pytest.raises(SidecarError) as caught:
        await run_identify({**CHAT, "stream": True, "stream_options": options})
    assert caught.value.param == "stream_options"
    for fine in (None, {}, {"include_usage": False}):
        ex = await run_identify({**CHAT, "stream": True, "stream_options": fine})
        assert ex.client_wants_usage is False


def deep_body(depth: int) -> bytes:
    return b'{"model":"gpt-4o","messages":[],"x":' + b"[" * depth + b"]" * depth + b"}"


async def test_a_body_too_deep_to_re_encode_is_refused_up_front() -> None:
    """A model call nested deeper than orjson can write (254) is refused before any attempt:
    streams and fallbacks re-encode it."""
    ex = await run_identify(deep_body(253))  # the body object and 253 arrays: 254 levels
    assert ex.model == "gpt-4o"
    with pytest.raises(SidecarError) as caught:
        await run_identify(deep_body(254))
    assert caught.value.reason == "too_deep"


@pytest.mark.parametrize("method", ["HEAD", "GET", "OPTIONS", "DELETE"])
async def test_only_post_to_a_model_endpoint_needs_a_model(method: str) -> None:
    """HEAD or GET on a model path is a pass-through: no body, no model required."""
    ex = await run_identify(None, method=method)
    assert ex.model is None


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/html; charset=utf-8"]
)
async def test_a_non_json_content_type_is_named_in_the_error(content_type: str) -> None:
    """A model call sent as another media type is told which one it sent and what to send."""
    with pytest.raises(SidecarError) as caught:
        await run_identify(b'{"model": "gpt-4o"}', {"Content-Type": content_type})
    assert caught.value.reason == "unsupported_content_type"
    assert content_type in caught.value.message
    assert "application/json" in caught.value.message


async def test_a_missing_body_is_still_reported_as_missing() -> None:
    """Without a body (and with a JSON or no Content-Type), the error says a body is needed."""
    with pytest.raises(SidecarError) as caught:
        await run_identify(None)
    assert caught.value.reason == "missing_body"


async def test_long_or_odd_user_ids_become_a_bounded_stable_hash() -> None:
    """X-Sidecar-User is whatever the app sends: past 128 characters, or with a control
    character, it is hashed, the same id always to the same hash, so keys and spans stay
    bounded and users stay distinct."""
    short = await identify(CHAT, {"X-Sidecar-User": "alice@example.com"})
    huge = await identify(CHAT, {"X-Sidecar-User": "x" * 5000})
    again = await identify(CHAT, {"X-Sidecar-User": "x" * 5000})
    spaced = await identify({**CHAT, "user": "José Núñez"})
    odd = await identify({**CHAT, "user": "bob\r\nX-Evil: 1"})
    assert short.user == "alice@example.com"
    assert huge.user.startswith("h-")
    assert len(huge.user) == 34
    assert again.user == huge.user
    assert spaced.user == "José Núñez"
    assert odd.user.startswith("h-")
