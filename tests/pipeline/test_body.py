"""ReadBody: the size limit and JSON parsing."""

from __future__ import annotations

import pytest

from sidecar.errors import ErrorCode, SidecarError
from sidecar.pipeline.body import ReadBody
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
