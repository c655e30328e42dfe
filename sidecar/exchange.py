"""The typed request context every stage reads and writes, and the reply stages return."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from multidict import CIMultiDictProxy

from sidecar.config import DEFAULT_OPERATION, Operation, Priority, Provider
from sidecar.errors import ErrorCode, SidecarError
from sidecar.stream import CLIENT_GONE, StreamEnd, end_observers

if TYPE_CHECKING:
    from sidecar.stream import StreamObserver


log = logging.getLogger(__name__)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    images: int = 0


@dataclass(slots=True)
class Exchange:
    """One client request on its way through the pipeline."""

    request_id: str
    method: str
    path: str  # below /v1, normalised and escaped as sent upstream: "chat/completions"
    query: str
    headers: CIMultiDictProxy[str]
    read_body: Callable[[int], Awaitable[bytes]]  # reads at most N bytes; raises past that
    started: float = field(default_factory=time.perf_counter)

    # Filled by the body stage.
    raw_body: bytes = b""
    body: dict[str, Any] | None = None
    body_changed: bool = False  # re-serialise ``body`` before sending upstream
    upstream_headers: dict[str, str] = field(default_factory=dict)  # added to the upstream call

    # Filled by the identity stage.
    user: str = "anonymous"
    operation: str = "chat"
    op: Operation = field(default=DEFAULT_OPERATION)
    priority: Priority = "normal"
    model: str | None = None  # as the client asked
    stream: bool = False
    prompt_estimate: int | None = None  # the prompt's estimated tokens (sidecar.tokens)
    client_wants_usage: bool = False  # client asked for stream_options.include_usage itself

    # Filled by routing and the upstream call.
    provider_name: str = ""
    provider: Provider | None = None
    pinned_provider: str | None = None  # named by X-Sidecar-Provider; fallbacks stay on it
    upstream_model: str | None = None  # model actually sent upstream (after fallbacks)
    response_model: str | None = None  # model the upstream says answered
    attempts: int = 0
    upstream_s: float = 0.0  # time spent waiting on the upstream, for the overhead figure
    deadline: float | None = None  # time.monotonic() by which every attempt must be done
    fallback: str | None = None  # "from->to" when degraded
    # Reserved against the monthly budget with the rate limit decision (one round trip for
    # both): the counter's key, the micro-dollars reserved, the counter's total after.
    budget_reserved: tuple[str, int, int] | None = None

    # Filled on the way back.
    usage: Usage | None = None
    cost_usd: Decimal | None = None
    cache: str = "BYPASS"  # X-Sidecar-Cache: HIT | MISS | BYPASS
    cache_key: str | None = None  # the response cache's key (None: not cacheable) ...
    cache_key_known: bool = False  # ... once the cache stage has worked it out
    # Values the rate limiter fetched in its Redis round trip, by key (the cache lookup rides
    # along with the limit check); a key that is absent was not fetched.
    prefetched: dict[str, bytes | None] = field(default_factory=dict)
    finish_reasons: list[str] = field(default_factory=list)
    error_code: str | None = None
    error_reason: str | None = None  # the answered error's ``reason`` (what refused it)
    limited_by: str | None = None  # the sidecar's own rate limit refused: "requests" | "tokens"

    def set_model(self, model: str) -> None:
        """Rewrite the model sent upstream (fallbacks); keeps the client's original in ``model``."""
        if self.body is not None and self.body.get("model") != model:
            self.body["model"] = model
            self.body_changed = True
        self.upstream_model = model

    def upstream_body(self) -> bytes:
        if self.body is not None and self.body_changed:
            return encode_body(self.body)
        return self.raw_body


# orjson reads JSON nested up to 1024 levels deep but writes at most this many.
MAX_ENCODABLE_DEPTH = 254


def encode_body(body: dict[str, Any]) -> bytes:
    """A client's (rewritten) body as JSON again; a 400 if it is nested too deep to write."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"Request body nests arrays or objects more than {MAX_ENCODABLE_DEPTH} levels "
            "deep, too deep for the sidecar to re-encode for the upstream; send a flatter "
            "structure.",
            reason="too_deep",
        ) from None


@dataclass(slots=True)
class Reply:
    """What a stage answers: a whole body, or a stream relayed as it arrives.

    A reply owns its stream (and through it the upstream connection). Whoever receives a reply
    must call :meth:`aclose` when done with it, however it went; the server does so in a
    ``finally``. Closing is idempotent and ends every observer exactly once, so a reply that is
    never sent (``prepare`` failed, the request was cancelled) still closes the upstream,
    finishes its spans and gives a half-open breaker its probe back.

    ``sse`` streams are events (each ending in a blank line) that observers
    (:mod:`sidecar.stream`) may look at and transform; other streams are raw body chunks of a
    pass-through response, relayed untouched.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: AsyncGenerator[bytes] | None = None
    sse: bool = True
    observers: list[StreamObserver] = field(default_factory=list)
    # Releases the upstream connection even if ``stream`` never started (closing a generator
    # that never ran does not run its ``finally``).
    release: Callable[[], None] | None = None
    # Awaited when the stream ends, before the observers' trailing events go out: work that
    # must be done before the client sees the end (the usage record's commit).
    finishers: list[Callable[[StreamEnd], Awaitable[None]]] = field(default_factory=list)
    _json: dict[str, Any] | None = None
    _finished: bool = False

    def json(self) -> dict[str, Any] | None:
        """The body parsed once, or None when it is not a JSON object."""
        if self._json is None and self.body and self.stream is None:
            try:
                parsed = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                return None
            self._json = parsed if isinstance(parsed, dict) else None
        return self._json

    async def finish(self, end: StreamEnd) -> list[bytes]:
        """Close the stream and end the observers (once); their trailing events."""
        if self._finished:
            return []
        self._finished = True
        try:
            if self.stream is not None:
                await self.stream.aclose()
        finally:
            if self.release is not None:
                self.release()
            for finisher in self.finishers:
                try:
                    await finisher(end)
                except Exception:  # the observers must still hear the end
                    log.exception("finishing the reply failed")
            tail = end_observers(self.observers, end)
        return tail

    async def aclose(self) -> None:
        """Release everything the reply holds; a no-op once it has been relayed or closed."""
        await self.finish(CLIENT_GONE)
