"""How a streamed reply flows: one loop, and observers the stages attach.

Stages do not wrap the stream in generators of their own (five layers cost every event five
generator hops). Each attaches a :class:`StreamObserver` to the reply; :func:`relay` runs the
upstream's events through the observers in the order they were attached (the innermost stage
first) and tells each, exactly once, how the stream ended.

An observer may transform the stream:

- ``on_event`` returns the event, a replacement, or ``None`` to drop it (or hold its text back);
- ``on_end`` returns trailing events (text it held back, a final notice), which pass through the
  observers after it before they reach the client;
- ``on_event`` may raise :class:`StopStream` to end the stream by policy (a security block): the
  upstream is closed, every observer hears ``POLICY``, and the client gets the error event.

An upstream failure mid-stream becomes an OpenAI-style error event, sent after the trailing
events; the relay itself never raises it. Waits for the upstream count as upstream time.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import orjson

from sidecar.errors import SidecarError

if TYPE_CHECKING:
    from sidecar.exchange import Exchange, Reply

log = logging.getLogger(__name__)


class EndReason(enum.Enum):
    COMPLETED = "completed"
    UPSTREAM_ERROR = "upstream_error"  # the only reason breakers and retry budgets count
    CLIENT_GONE = "client_gone"
    POLICY = "policy"  # stopped by the sidecar on purpose (e.g. a security block)


@dataclass(frozen=True, slots=True)
class StreamEnd:
    reason: EndReason
    error: SidecarError | None = None  # what the client was told, for UPSTREAM_ERROR and POLICY

    @property
    def completed(self) -> bool:
        return self.reason is EndReason.COMPLETED

    @property
    def upstream_failed(self) -> bool:
        return self.reason is EndReason.UPSTREAM_ERROR


CLIENT_GONE = StreamEnd(EndReason.CLIENT_GONE)


class StopStream(Exception):
    """Raised by an observer's ``on_event`` to end the stream by policy with ``error``."""

    def __init__(self, error: SidecarError) -> None:
        super().__init__(error.message)
        self.error = error


class Truncated(Exception):
    """A raw (non-SSE) body failed upstream midway: it can only be cut off."""


class StreamObserver(Protocol):
    def on_event(self, event: bytes) -> bytes | None:
        """Look at, replace (return another event) or drop (None) one event."""
        ...

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        """The stream ended; return trailing events to send (usually none)."""
        ...


NO_EVENTS: Sequence[bytes] = ()


def sse_error(err: SidecarError, request_id: str, *, responses: bool = False) -> bytes:
    """An error as the last SSE event of a stream, in the OpenAI error envelope. A Responses
    stream's is also its own ``error`` event (``type``, ``code``, ``message``), which strict
    Responses parsers expect; the envelope beside it keeps the SDKs raising as for chat."""
    envelope = err.envelope(request_id)
    if not responses:
        return b"data: " + orjson.dumps(envelope) + b"\n\n"
    event = {"type": "error", "code": err.code.value, "message": err.message, "param": err.param}
    return b"event: error\ndata: " + orjson.dumps({**event, **envelope}) + b"\n\n"


def through(observers: Sequence[StreamObserver], event: bytes) -> bytes | None:
    """One event through a run of observers; None once any of them drops it."""
    for observer in observers:
        result = observer.on_event(event)
        if result is None:
            return None
        event = result
    return event


def end_observers(observers: Sequence[StreamObserver], end: StreamEnd) -> list[bytes]:
    """Tell every observer the stream ended; their trailing events, through the later ones."""
    pending: list[bytes] = []
    for observer in observers:
        if pending:  # events from earlier observers' on_end pass through this one first
            pending = [e for e in (_safe_event(observer, e) for e in pending) if e is not None]
        try:
            pending.extend(observer.on_end(end))
        except Exception:  # one observer's bug must not hide the stream's end from the others
            log.exception("stream observer %r failed", observer)
    return pending


def _safe_event(observer: StreamObserver, event: bytes) -> bytes | None:
    try:
        return observer.on_event(event)
    except Exception:  # StopStream included: the stream is already ending
        log.exception("stream observer %r failed on a trailing event", observer)
        return event


async def relay(reply: Reply, ex: Exchange) -> AsyncGenerator[bytes]:
    """The events to send to the client, through every observer; always ends the observers.

    If the caller stops early (the client went away) the generator is closed and the observers
    hear ``CLIENT_GONE``; if it is never started, :meth:`Reply.aclose` does the same.
    """
    assert reply.stream is not None
    source, observers = reply.stream, reply.observers
    end = CLIENT_GONE
    try:
        while True:
            waited = time.perf_counter()
            try:
                event = await anext(source)
            except StopAsyncIteration:
                end = StreamEnd(EndReason.COMPLETED)
                break
            finally:
                ex.upstream_s += time.perf_counter() - waited
            if (out := through(observers, event)) is not None:
                yield out
    except SidecarError as err:
        end = StreamEnd(EndReason.UPSTREAM_ERROR, err)
    except StopStream as stop:
        end = StreamEnd(EndReason.POLICY, stop.error)
    finally:
        # Runs for GeneratorExit too (the client left): then ``end`` is still CLIENT_GONE and
        # nothing more may be yielded.
        tail = await reply.finish(end)
    for event in tail:
        yield event
    if end.error is not None:
        ex.error_code = end.error.code.value
        if not reply.sse:
            raise Truncated(end.error.message)
        yield sse_error(end.error, ex.request_id, responses=ex.path == "responses")
