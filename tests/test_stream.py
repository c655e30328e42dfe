"""The stream loop: observers see events inner first, may transform them, and hear the end once."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import orjson

from sidecar import stream
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Reply
from sidecar.stream import EndReason, StopStream, StreamEnd
from tests.helpers import exchange


class Recorder:
    def __init__(
        self,
        drop: bytes | None = None,
        fail_on_end: bool = False,
        tail: Sequence[bytes] = (),
        stop_on: bytes | None = None,
    ) -> None:
        self.seen: list[bytes] = []
        self.ends: list[StreamEnd] = []
        self.drop = drop
        self.fail_on_end = fail_on_end
        self.tail = tail
        self.stop_on = stop_on

    def on_event(self, event: bytes) -> bytes | None:
        self.seen.append(event)
        if event == self.stop_on:
            raise StopStream(SidecarError(ErrorCode.INVALID_INPUT, "blocked by policy"))
        return None if event == self.drop else event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        self.ends.append(end)
        if self.fail_on_end:
            raise RuntimeError("observer bug")
        return self.tail


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


async def test_a_dropped_event_reaches_neither_later_observers_nor_the_client() -> None:
    """The first observer drops b; the second never sees it and neither does the client."""
    inner, outer = Recorder(drop=b"b"), Recorder()
    reply = Reply(200, stream=source(b"a", b"b", b"c"), observers=[inner, outer])
    relayed = [event async for event in stream.relay(reply, exchange())]
    assert relayed == [b"a", b"c"]
    assert (inner.seen, outer.seen) == ([b"a", b"b", b"c"], [b"a", b"c"])
    assert inner.ends == [StreamEnd(EndReason.COMPLETED)]
    assert outer.ends == [StreamEnd(EndReason.COMPLETED)]


async def test_trailing_events_pass_through_the_later_observers_then_reach_the_client() -> None:
    """An observer that held text back emits it from on_end; outer observers see it first."""
    inner, outer = Recorder(drop=b"held", tail=[b"released"]), Recorder()
    reply = Reply(200, stream=source(b"a", b"held"), observers=[inner, outer])
    relayed = [event async for event in stream.relay(reply, exchange())]
    assert relayed == [b"a", b"released"]
    assert outer.seen == [b"a", b"released"]


async def test_an_upstream_failure_becomes_an_error_event_and_reaches_every_observer() -> None:
    """A SidecarError mid-stream ends observers with UPSTREAM_ERROR, then an error event."""
    failing, after = Recorder(fail_on_end=True), Recorder()
    error = SidecarError(ErrorCode.NETWORK, "reset")
    ex = exchange()
    reply = Reply(200, stream=source(b"a", error=error), observers=[failing, after])
    relayed = [event async for event in stream.relay(reply, ex)]
    assert relayed[0] == b"a"
    assert b'"code":"NETWORK"' in relayed[1]
    assert after.ends == [StreamEnd(EndReason.UPSTREAM_ERROR, error)]  # not hidden by the bug
    assert ex.error_code == "NETWORK"


async def test_an_observer_can_stop_the_stream_by_policy() -> None:
    """StopStream closes the upstream, ends every observer with POLICY and tells the client."""
    closed: list[bool] = []
    guard, outer = Recorder(stop_on=b"secret"), Recorder()
    upstream = source(b"a", b"secret", b"never", closed=closed)
    reply = Reply(200, stream=upstream, observers=[guard, outer])
    relayed = [event async for event in stream.relay(reply, exchange())]
    assert relayed[0] == b"a"
    assert b"blocked by policy" in relayed[1]
    assert len(relayed) == 2
    assert [end.reason for end in outer.ends] == [EndReason.POLICY]
    assert closed == [True]


async def test_a_responses_stream_ends_with_its_own_error_event_carrying_the_envelope() -> None:
    """On /v1/responses the last event is an `error` event (type, code, message) as strict
    Responses parsers expect, with the OpenAI envelope beside it so SDKs raise as for chat."""
    reply = Reply(200, stream=source(b"a", b"secret"), observers=[Recorder(stop_on=b"secret")])
    relayed = [event async for event in stream.relay(reply, exchange("responses"))]
    head, data = relayed[-1].split(b"\n", 1)
    assert head == b"event: error"
    body = orjson.loads(data.removeprefix(b"data: "))
    assert (body["type"], body["code"], body["message"]) == (
        "error",
        "INVALID_INPUT",
        "blocked by policy",
    )
    assert body["error"]["code"] == "INVALID_INPUT"


async def test_a_client_that_leaves_ends_observers_once_and_closes_the_upstream() -> None:
    """Closing the relay early ends observers with CLIENT_GONE; a later aclose adds nothing."""
    observer = Recorder()
    closed: list[bool] = []
    reply = Reply(200, stream=source(b"a", b"b", closed=closed), observers=[observer])
    relay = stream.relay(reply, exchange())
    assert await anext(relay) == b"a"
    await relay.aclose()
    await reply.aclose()
    assert [end.reason for end in observer.ends] == [EndReason.CLIENT_GONE]
    assert closed == [True]


async def test_a_reply_closed_before_its_stream_started_still_ends_its_observers() -> None:
    """aclose() on a never-relayed reply closes the upstream and ends observers exactly once."""
    observer = Recorder()
    closed: list[bool] = []
    upstream = source(b"a", closed=closed)
    await anext(upstream)  # the upstream connection is open (its generator has started)
    reply = Reply(200, stream=upstream, observers=[observer])
    await reply.aclose()
    await reply.aclose()
    assert [end.reason for end in observer.ends] == [EndReason.CLIENT_GONE]
    assert closed == [True]
