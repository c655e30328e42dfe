"""How a streamed reply flows: one loop, and observers the stages attach.

Stages do not wrap the stream in generators of their own (five layers cost every event five
generator hops). Each attaches a :class:`StreamObserver` to the reply; :func:`events` runs the
upstream's events through the observers, inner stage first, and tells each how the stream
ended. Waits for the upstream count as upstream time, not sidecar overhead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from sidecar.errors import SidecarError
from sidecar.exchange import Exchange, Reply

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StreamEnd:
    """How a stream ended: completed, failed upstream (``error``), or left by the client."""

    error: SidecarError | None = None
    abandoned: bool = False

    @property
    def completed(self) -> bool:
        return self.error is None and not self.abandoned


class StreamObserver(Protocol):
    def on_event(self, event: bytes) -> bytes | None:
        """Look at (or replace) one event; None drops it."""
        ...

    def on_end(self, end: StreamEnd) -> None: ...


async def events(reply: Reply, ex: Exchange) -> AsyncGenerator[bytes]:
    """The events to send to the client, through every observer; always ends the observers."""
    assert reply.stream is not None
    source = reply.stream
    end = StreamEnd()
    try:
        while True:
            waited = time.perf_counter()
            try:
                event: bytes | None = await anext(source)
            except StopAsyncIteration:
                return
            ex.upstream_s += time.perf_counter() - waited
            for observer in reply.observers:
                if event is None:
                    break
                event = observer.on_event(event)
            if event is not None:
                yield event
    except SidecarError as err:
        end.error = err
        raise
    except BaseException:  # GeneratorExit or cancellation: the client is gone
        end.abandoned = True
        raise
    finally:
        await source.aclose()
        for observer in reply.observers:
            try:
                observer.on_end(end)
            except Exception:  # one observer's bug must not hide the stream's end from others
                log.exception("stream observer %r failed", observer)
