"""ReadBody: the size limit and JSON parsing."""

from __future__ import annotations

import pytest

from sidecar.errors import ErrorCode, SidecarError
from sidecar.pipeline.body import BodyUnreadable, ReadBody, is_json
from tests.helpers import Recorder, exchange


async def test_parses_a_json_object_body() -> None:
    """A JSON body is parsed once and handed on."""
    ex = exchange(body={"model": "gpt-4o"})
    await ReadBody(1024)(ex, Recorder())
    assert ex.body == {"model": "gpt-4o"}


async def test_body_over_the_limit_is_payload_too_large() -> None:
    """One byte over the limit is rejected with PAYLOAD_TOO_LARGE and the config key to change."""
    ex = exchange(body=b"{" + b" " * 100 + b"}")
    with pytest.raises(SidecarError) as caught:
        await ReadBody(50)(ex, Recorder())
    assert caught.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert "limits.max_body_bytes" in caught.value.message


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
async def test_malformed_or_non_object_json_is_invalid_input(raw: bytes) -> None:
    """Anything but a JSON object is INVALID_INPUT with reason malformed_json."""
    with pytest.raises(SidecarError) as caught:
        await ReadBody(1024)(exchange(body=raw), Recorder())
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert caught.value.reason == "malformed_json"


async def test_non_json_bodies_pass_through_unparsed() -> None:
    """Multipart uploads (audio, files) are forwarded as bytes, not parsed."""
    ex = exchange(
        path="audio/transcriptions",
        body=b"--b\r\ncontent\r\n--b--",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    recorder = Recorder()
    await ReadBody(1024)(ex, recorder)
    assert ex.body is None
    assert recorder.seen[0].raw_body == b"--b\r\ncontent\r\n--b--"


async def test_a_body_that_cannot_be_read_is_invalid_input() -> None:
    """A body that does not decode as its Content-Encoding says is a 400 that says why."""

    async def unreadable(limit: int) -> bytes:
        raise BodyUnreadable("Can not decode content-encoding: gzip")

    ex = exchange(body={"model": "gpt-4o"})
    ex.read_body = unreadable
    with pytest.raises(SidecarError) as caught:
        await ReadBody(1024)(ex, Recorder())
    assert (caught.value.code, caught.value.reason) == (ErrorCode.INVALID_INPUT, "unreadable_body")
    assert "gzip" in caught.value.message


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        (None, True),
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        (" APPLICATION/JSON ; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=b", False),
        ("text/plain; x=application/json", False),
    ],
)
def test_json_content_types(content_type: str | None, json: bool) -> None:
    """JSON is recognised whatever the case of the media type, with parameters or +json."""
    assert is_json(content_type) is json
