"""The stream loop: observers see events inner first, may drop them, and always hear the end."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from sidecar import stream
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Reply
from sidecar.stream import StreamEnd
from tests.helpers import exchange


class Recorder:
    def __init__(self, drop: bytes | None = None, fail_on_end: bool = False) -> None:
        self.seen: list[bytes] = []
        self.ends: list[StreamEnd] = []
        self.drop = drop
        self.fail_on_end = fail_on_end

    def on_event(self, event: bytes) -> bytes | None:
        self.seen.append(event)
        return None if event == self.drop else event

    def on_end(self, end: StreamEnd) -> None:
        self.ends.append(end)
        if self.fail_on_end:
            raise RuntimeError("observer bug")


async def source(
    *events: bytes, error: SidecarError | None = None, closed: list[bool] | None = None
) -> AsyncGenerator[bytes]:
    try:
        for event in events:
            yield event
        if error is not None:
            raise error
    finally:
        if closed is not None:
            closed.append(True)


async def drain(events: AsyncGenerator[bytes], into: list[bytes]) -> None:
    async for event in events:
        into.append(event)


async def test_a_dropped_event_reaches_neither_later_observers_nor_the_client() -> None:
    """The first observer drops b; the second never sees it and neither does the client."""
    inner, outer = Recorder(drop=b"b"), Recorder()
    reply = Reply(200, stream=source(b"a", b"b", b"c"), observers=[inner, outer])
    relayed = [event async for event in stream.events(reply, exchange())]
    assert relayed == [b"a", b"c"]
    assert (inner.seen, outer.seen) == ([b"a", b"b", b"c"], [b"a", b"c"])
    assert inner.ends[0].completed
    assert outer.ends[0].completed


async def test_an_upstream_failure_is_reported_to_every_observer() -> None:
    """A SidecarError mid-stream reaches the relay and each observer's on_end."""
    failing, after = Recorder(fail_on_end=True), Recorder()
    error = SidecarError(ErrorCode.NETWORK, "reset")
    reply = Reply(200, stream=source(b"a", error=error), observers=[failing, after])
    relayed: list[bytes] = []
    with pytest.raises(SidecarError):
        await drain(stream.events(reply, exchange()), relayed)
    assert relayed == [b"a"]
    assert after.ends[0].error is error  # the first observer's bug did not hide the end


async def test_a_client_that_leaves_abandons_the_stream() -> None:
    """Closing the relay early ends observers with abandoned=True and closes the source."""
    observer = Recorder()
    closed: list[bool] = []
    upstream = source(b"a", b"b", closed=closed)
    relay = stream.events(Reply(200, stream=upstream, observers=[observer]), exchange())
    assert await anext(relay) == b"a"
    await relay.aclose()
    assert observer.ends[0].abandoned
    assert closed == [True]  # the upstream response was closed too
