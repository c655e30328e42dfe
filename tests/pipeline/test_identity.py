"""Identify: user, operation, priority and model per SPEC "Request identity"."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config import settings_from_dict
from sidecar.errors import SidecarError
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
