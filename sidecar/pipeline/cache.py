"""Response cache: an identical model call is answered from a stored answer, not the upstream.

The rules (the data below, applied by :meth:`ResponseCache.key_for` and :func:`storable`)::

    cacheable   POST chat/completions | responses | embeddings | images/generations, with
                operations.OP.cache_ttl_s > 0; streamed only on chat and responses; never with
                "Cache-Control: no-store", nor a Responses call whose answer depends on state
                outside the request (STATEFUL_FIELDS)
    looked up   unless "Cache-Control: no-cache" (the fresh answer is still stored)
    key         {redis_prefix}cache:{operation}:{scope}:{sha256}
                scope (operations.OP.cache_scope): user u:{user} | tenant t:{X-Sidecar-Tenant},
                u:{user} without one | global *
                sha256 of operation, path, X-Sidecar-Provider (and the client's Authorization
                when a provider forwards it) and the body as canonical JSON without
                IGNORED_FIELDS, which do not change what the model answers
    stored      after the reply, in the background (a full queue skips it), for cache_ttl_s:
                2xx answers of the requested model (never a fallback's: the next request may
                well get the model it asked for), complete ones only (streams that ended
                COMPLETED, every choice finished, a Responses status "completed")
    replayed    as JSON, or as SSE events when the request streams (:mod:`sidecar.replay`);
                stream and non-stream requests share entries

X-Sidecar-Cache: HIT (answered without the upstream), MISS (looked up, not found), BYPASS (not
cacheable, no-cache, or the store is unreachable).

Single flight: identical misses in flight in one process make one upstream call. The first
calls; the others wait for its answer (at most the operation's deadline) and are answered from
it as HITs, since they cost no upstream call. If it fails or cannot be stored, each waiter calls
on its own. A store that fails (Redis down or slow) is bypassed for ``backends.redis_cooldown_s``
with one warning per outage; Redis never turns a request into an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from redis.exceptions import RedisError

from sidecar.config import Settings
from sidecar.exchange import Exchange, Reply, Usage
from sidecar.pipeline.base import Next
from sidecar.pipeline.identity import bounded_user
from sidecar.replay import ChatAssembler, chat_events, event_json, responses_events
from sidecar.runtime import Runtime
from sidecar.stream import NO_EVENTS, StreamEnd

log = logging.getLogger(__name__)

CACHEABLE_PATHS: Final = frozenset(
    {"chat/completions", "responses", "embeddings", "images/generations"}
)
STREAMED_PATHS: Final = frozenset({"chat/completions", "responses"})  # replayable as SSE
# Body fields that do not change the answer's content: who asks (the scope partitions by user),
# how it is delivered (stream, stream_options), billing and retention (service_tier, store,
# metadata), and the provider's own prompt-cache routing hints.
IGNORED_FIELDS: Final = frozenset(
    {
        "user", "safety_identifier", "stream", "stream_options", "metadata", "store",
        "service_tier", "prompt_cache_key", "prompt_cache_retention",
    }
)  # fmt: skip
# Responses calls whose answer is not a function of the request: run in the background (the
# first answer is "queued"), or appended to a server-side conversation that changes each turn.
STATEFUL_FIELDS: Final = ("background", "conversation")
# Image URLs expire at the provider (OpenAI: after an hour): such answers are kept less long.
IMAGE_URL_TTL_S: Final = 3000
STORE_ERRORS: Final = (RedisError, OSError, TimeoutError)
_JSON = {"Content-Type": "application/json"}
_SSE = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_ENVELOPE_VERSION = 1

Clock = Callable[[], float]


def cache_scope(ex: Exchange) -> str:
    """Who may share this request's cached answer (``cache_scope``): a user, a tenant, all."""
    scope = ex.op.cache_scope
    if scope == "global":
        return "*"
    if scope == "tenant" and (tenant := ex.headers.get("X-Sidecar-Tenant")):
        return "t:" + bounded_user(tenant)
    return "u:" + ex.user


def operation_prefix(settings: Settings, operation: str) -> str:
    """Every cache key of one operation starts with this (``DELETE /sidecar/cache``)."""
    return f"{settings.backends.redis_prefix}cache:{operation}:"


# --- what is stored: a one-line JSON head, a newline, then the answer's body as it came -------


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes  # the non-streaming JSON answer
    model: str | None = None
    usage: tuple[int, int, int, int] | None = None  # input, output, cached input, images
    finish: tuple[str, ...] = ()

    def pack(self) -> bytes:
        head = {"v": _ENVELOPE_VERSION, "model": self.model, "usage": self.usage}
        return orjson.dumps({**head, "finish": self.finish}) + b"\n" + self.body

    @classmethod
    def unpack(cls, raw: bytes) -> Entry | None:
        """None for anything but an entry this version wrote (a miss, never an error)."""
        head, newline, body = raw.partition(b"\n")
        try:
            meta = orjson.loads(head) if newline else None
        except orjson.JSONDecodeError:
            return None
        if not isinstance(meta, dict) or meta.get("v") != _ENVELOPE_VERSION:
            return None
        usage = meta.get("usage")
        return cls(
            body,
            meta.get("model"),
            tuple(usage) if isinstance(usage, list) and len(usage) == 4 else None,
            tuple(meta.get("finish") or ()),
        )

    @classmethod
    def of(cls, ex: Exchange, body: bytes) -> Entry:
        u = ex.usage
        usage = (
            None
            if u is None
            else (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.images)
        )
        return cls(body, ex.response_model, usage, tuple(ex.finish_reasons))


def storable(path: str, answer: dict[str, Any]) -> bool:
    """A complete answer: every chat choice finished (with nothing a stream replay would
    drop), a response completed, data present."""
    if path == "responses":
        return answer.get("status") == "completed"
    if path == "chat/completions":
        choices = answer.get("choices")
        return (
            bool(choices)
            and isinstance(choices, list)
            and all(
                isinstance(c, dict)
                and isinstance(c.get("finish_reason"), str)
                and not _unreplayable(c.get("message"))
                for c in choices
            )
        )
    return isinstance(answer.get("data"), list)


def _unreplayable(message: object) -> bool:
    """A message a hit could not stream back whole (annotations, audio): not stored."""
    return isinstance(message, dict) and bool(message.get("annotations") or message.get("audio"))


def ttl_for(ex: Exchange, answer: dict[str, Any]) -> float:
    ttl = float(ex.op.cache_ttl_s)
    if ex.path == "images/generations" and any(
        isinstance(image, dict) and "url" in image for image in answer.get("data") or ()
    ):
        return min(ttl, IMAGE_URL_TTL_S)
    return ttl


def cache_directives(ex: Exchange) -> set[str]:
    return {
        token.split("=", 1)[0].strip().lower()
        for value in ex.headers.getall("Cache-Control", ())
        for token in value.split(",")
    }


# --- the stage -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Flight:
    """An upstream call identical requests wait for; ``entry`` is None if it cannot be shared."""

    landed: asyncio.Event = field(default_factory=asyncio.Event)
    entry: Entry | None = None


class ResponseCache:
    def __init__(self, rt: Runtime, *, clock: Clock = time.monotonic) -> None:
        self.settings = rt.settings
        self.store = rt.backends.cache
        self.telemetry = rt.telemetry
        self.background = rt.background
        self.outage = Outage(rt.settings.backends.redis_cooldown_s, clock)
        # Where the client's own key reaches a provider, the provider decides who may ask:
        # answers are then shared only between callers presenting the same key.
        self._by_client_key = any(p.forward_client_key for p in rt.settings.providers.values())
        self._flights: dict[str, _Flight] = {}
        self._cleared: dict[str, int] = {}  # operation -> clears so far (void stores in flight)

    def key_for(self, ex: Exchange) -> str | None:
        """The cache key of this request, or None when it is not cacheable (computed once)."""
        if not ex.cache_key_known:
            ex.cache_key, ex.cache_key_known = self._key(ex), True
        return ex.cache_key

    def _key(self, ex: Exchange) -> str | None:
        body = ex.body
        if (
            body is None
            or ex.model is None
            or ex.op.cache_ttl_s <= 0
            or ex.method != "POST"
            or ex.path not in CACHEABLE_PATHS
            or (ex.stream and ex.path not in STREAMED_PATHS)
            or any(body.get(name) for name in STATEFUL_FIELDS)
            or (ex.headers.get("Cache-Control") is not None and "no-store" in cache_directives(ex))
        ):
            return None
        # 1 and 1.0 are the same temperature: whole floats are written as integers.
        fields = {
            name: int(value) if isinstance(value, float) and value.is_integer() else value
            for name, value in body.items()
            if name not in IGNORED_FIELDS
        }
        if ex.path == "responses":
            # A Responses id is chained on (previous_response_id) only if the provider stored
            # it: an answer given with store false must not answer a request that stores.
            fields["store"] = body.get("store", True) is not False
        try:
            canonical = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return None
        # The query string goes upstream too (?api-version=... on Azure-style providers).
        context = [ex.operation, ex.path, ex.query, ex.headers.get("X-Sidecar-Provider", "")]
        if self._by_client_key:
            context.append(ex.headers.get("Authorization", ""))
        digest = hashlib.sha256("\n".join(context).encode("utf-8", "surrogateescape") + b"\n")
        digest.update(canonical)
        return (
            f"{operation_prefix(self.settings, ex.operation)}{cache_scope(ex)}:{digest.hexdigest()}"
        )

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        key = self.key_for(ex)
        if key is None or self.outage.active:
            return await call_next(ex)  # X-Sidecar-Cache stays BYPASS
        if ex.headers.get("Cache-Control") is not None and "no-cache" in cache_directives(ex):
            return await self._fetch(ex, call_next, key, None)
        try:
            raw = ex.prefetched[key] if key in ex.prefetched else await self.store.get(key)
        except STORE_ERRORS as exc:
            self.outage.failed(exc)
            return await call_next(ex)
        self.outage.recovered()
        entry = Entry.unpack(raw) if raw is not None else None
        if entry is None and (flight := self._flights.get(key)) is not None:
            entry = flight.entry if flight.landed.is_set() else await self._wait(ex, key, flight)
        if entry is not None and (reply := self._hit(ex, entry)) is not None:
            return reply
        ex.cache = "MISS"
        self.telemetry.cache_lookup(ex, hit=False)
        leader = None if key in self._flights else self._flights.setdefault(key, _Flight())
        return await self._fetch(ex, call_next, key, leader)

    async def _wait(self, ex: Exchange, key: str, flight: _Flight) -> Entry | None:
        deadline_s = ex.op.deadline_s or self.settings.resilience.deadline_s
        left = deadline_s - (time.perf_counter() - ex.started)
        try:
            await asyncio.wait_for(flight.landed.wait(), max(0.0, left))
        except TimeoutError:
            # The first call is taking too long: call on our own, and let later requests
            # lead their own calls rather than wait for this one as well.
            if self._flights.get(key) is flight:
                del self._flights[key]
            return None
        return flight.entry

    def _hit(self, ex: Exchange, entry: Entry) -> Reply | None:
        """The stored answer in the mode the request asks for (None: it cannot be replayed)."""
        if not ex.stream:
            reply = Reply(200, dict(_JSON), body=entry.body)
        else:
            try:
                answer = orjson.loads(entry.body)
            except orjson.JSONDecodeError:
                return None
            if not isinstance(answer, dict):
                return None
            if ex.path == "responses":
                events = responses_events(answer)
            else:
                events = chat_events(answer, include_usage=ex.client_wants_usage)
            reply = Reply(200, dict(_SSE), stream=_replay(events))
        ex.cache = "HIT"
        ex.response_model = entry.model
        ex.usage = None if entry.usage is None else Usage(*entry.usage)
        ex.finish_reasons = list(entry.finish)
        self.telemetry.cache_lookup(ex, hit=True)
        return reply

    async def _fetch(
        self, ex: Exchange, call_next: Next, key: str, flight: _Flight | None
    ) -> Reply:
        """Call the upstream, then keep its answer if it may be kept (and share it)."""
        call = _Call(key, ex, flight, self._cleared.get(ex.operation, 0))
        try:
            reply = await call_next(ex)
        except BaseException:
            self._land(call, None)
            raise
        if not 200 <= reply.status < 300 or ex.fallback is not None:
            self._land(call, None)
        elif reply.stream is not None:
            if reply.sse:
                reply.observers.append(_Capture(self, call))
            else:
                self._land(call, None)
        elif (answer := reply.json()) is not None and storable(ex.path, answer):
            self._keep(call, Entry.of(ex, reply.body), ttl_for(ex, answer))
        else:
            self._land(call, None)
        return reply

    def _keep(self, call: _Call, entry: Entry, ttl_s: float) -> None:
        """Share the answer with the waiters now; store it after the reply."""
        if self._voided(call):
            self._land(call, entry)
            return
        self._land(call, entry, stored=False)
        packed = entry.pack()

        async def store() -> None:
            try:
                if not self._voided(call):
                    await self.store.set(call.key, packed, ttl_s=ttl_s)
            except STORE_ERRORS as exc:
                self.outage.failed(exc)
            finally:
                self._ground(call)

        if not self.background.submit("cache.store", store):
            self._ground(call)

    def _voided(self, call: _Call) -> bool:
        """The operation's cache was cleared since the call began."""
        return self._cleared.get(call.ex.operation, 0) != call.cleared

    def _land(self, call: _Call, entry: Entry | None, *, stored: bool = True) -> None:
        """Answer the waiters. A flight with an answer stays until the answer is stored, so a
        request arriving meanwhile is served from it rather than calling again."""
        if call.flight is None:
            return
        call.flight.entry = entry
        call.flight.landed.set()
        if stored or entry is None:
            self._ground(call)

    def _ground(self, call: _Call) -> None:
        if call.flight is not None and self._flights.get(call.key) is call.flight:
            del self._flights[call.key]

    async def clear(self, operation: str) -> int:
        """Remove every stored answer of ``operation``; how many. Answers in flight in this
        process are not stored afterwards."""
        self._cleared[operation] = self._cleared.get(operation, 0) + 1
        prefix = operation_prefix(self.settings, operation)
        for key in [key for key in self._flights if key.startswith(prefix)]:
            del self._flights[key]
        return await self.store.clear(prefix)


@dataclass(frozen=True, slots=True)
class _Call:
    """One upstream call whose answer may be kept: under which key, who waits for it."""

    key: str
    ex: Exchange
    flight: _Flight | None  # None when no one waits (no-cache, or another call leads)
    cleared: int  # clears of the operation when the call began


async def _replay(events: list[bytes]) -> AsyncGenerator[bytes]:
    for event in events:
        yield event


class _Capture:
    """Rebuilds a streamed answer as it passes; keeps it if the stream completed."""

    def __init__(self, cache: ResponseCache, call: _Call) -> None:
        self.cache, self.call = cache, call
        self.chat = ChatAssembler() if call.ex.path == "chat/completions" else None
        self.final: dict[str, Any] | None = None  # the Responses API's completed response

    def on_event(self, event: bytes) -> bytes | None:
        if self.chat is not None:
            if (chunk := event_json(event)) is not None:
                self.chat.add(chunk)
        elif b"response.completed" in event:
            obj = event_json(event) or {}
            if obj.get("type") == "response.completed" and isinstance(obj.get("response"), dict):
                self.final = obj["response"]
        return event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        ex, answer = self.call.ex, None
        if end.completed:
            answer = self.chat.completion(ex.usage) if self.chat is not None else self.final
        if answer is None or not storable(ex.path, answer):
            self.cache._land(self.call, None)
        else:
            self.cache._keep(self.call, Entry.of(ex, orjson.dumps(answer)), ttl_for(ex, answer))
        return NO_EVENTS


class Outage:
    """A store that failed is bypassed for ``cooldown_s``, then tried again; one warning each."""

    def __init__(self, cooldown_s: float, clock: Clock = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.down = False
        self._until = 0.0

    @property
    def active(self) -> bool:
        return self.down and self.clock() < self._until

    def failed(self, exc: BaseException) -> None:
        self._until = self.clock() + self.cooldown_s
        if not self.down:
            self.down = True
            log.warning(
                "response cache unavailable (%s: %s); bypassing it until it answers again",
                type(exc).__name__,
                exc,
            )

    def recovered(self) -> None:
        if self.down:
            self.down = False
            log.info("response cache answers again")
