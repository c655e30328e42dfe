"""Redaction of streamed text: the same result as the whole text, with a small hold-back.

:class:`StreamRedactor` takes text deltas and returns what is safe to send now. It holds back
only what a detector could still be matching: the trailing run of non-space characters (a key
or an address being typed out) and, before it, single-space-separated groups of digits and
capitals (``+44 20 7946``, ``DE89 3704``, ``(415) 555``). Text ending in a newline, or in a
word after a plain word, is sent at once. Detectors read at most ``LOOKBACK`` characters of
context before a match, so the redactor keeps that much of the text it already sent.

Bounds, and what happens at them:

- ``window`` (512 characters by default, at least 256: longer than any provider key) caps
  the hold-back. A run longer than that is sent from its oldest end, a finding that crosses
  the cut redacted whole. A JWT (once its header validates) or a named secret (``token=...``)
  still arriving at the window is the exception: its marker goes out and the rest of it is
  dropped as it arrives: a JWT's remaining parts (three, five when encrypted, as its header
  says; a sentence run on after it, "<sig>.Next", is text again), a named secret's run of
  token characters. (Whole-text redaction may not recognise such a secret if what follows
  breaks its shape: the stream is then the stricter of the two.)
- A PEM private key is followed, not held: from ``-----BEGIN ... PRIVATE KEY-----`` until 16
  characters of key material have arrived the redactor holds (at most the header line and a
  few characters); then it sends the marker (or raises, for ``block``), drops the body as it
  arrives, keeping only the current line, and resumes after the block's end
  (:mod:`sidecar.security.pem`).

``block``: :class:`OutputBlocked` is raised as soon as a blocked finding is certain; the
redactor must not be used after that. :class:`RedactingObserver` applies redactors to the
OpenAI event streams (chat, legacy completions, Responses); whole JSON answers are for
:func:`sidecar.security.secrets.redact_answer`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sidecar.replay import event_json
from sidecar.security import validators as v
from sidecar.security.pem import HEADER as PEM_HEADER
from sidecar.security.pem import PemBody
from sidecar.security.secrets import (
    GROUP_SPACES,
    LOOKBACK,
    Finding,
    Policy,
    Span,
    apply,
    blocked_error,
    findings_of,
    marker,
    redact,
    redact_arguments,
    scan,
)
from sidecar.stream import NO_EVENTS, EndReason, StopStream, StreamEnd

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 512
# Longer than any finding but a JWT or a private key (the longest keys are ~200 characters), so
# a cut forced by the window never falls inside a finding that is still arriving.
MIN_WINDOW = 256


class OutputBlocked(Exception):
    """A finding whose action is ``block``; ``spans`` are its offsets in the stream's text."""

    def __init__(self, spans: list[Span]) -> None:
        super().__init__(", ".join(sorted({s.type for s in spans})))
        self.spans = spans

    @property
    def types(self) -> list[str]:
        return sorted({s.type for s in self.spans})


# What a number or IBAN written in spaced groups is made of ("+44 (0)20 7946", "DE89 3704",
# "5555 5555"): no finding spans a space but these.
_GROUP_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ()+-.")
_GROUP_START = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ(+")


_GROUP_JOINERS = " " + GROUP_SPACES  # what joins the groups of a spaced number


def hold_from(text: str, floor: int) -> int:
    """Where the text a detector could still be matching begins (not before ``floor``): the
    trailing run of non-space characters and, if it may be a group of a spaced number, the
    groups before it, each joined by one space."""
    end = start = len(text)
    while start > floor and not text[start - 1].isspace():
        start -= 1
    if start == end or text[start] in _GROUP_START:
        while start - 1 > floor and text[start - 1] in _GROUP_JOINERS:
            k = m = start - 1
            while m > floor and not text[m - 1].isspace():
                m -= 1
            suffix = k
            while suffix > m and text[suffix - 1] in _GROUP_CHARS:
                suffix -= 1
            if not any(c in _GROUP_START for c in text[suffix:k]):
                break
            start = suffix
            if suffix > m:  # only the end of that run could belong to a number
                break
    begin = text.rfind("-----BEGIN", max(floor, end - 80))
    if begin >= 0 and PEM_HEADER.match(text, begin) is None and "-----" not in text[begin + 10 :]:
        start = min(start, begin)  # a key's header still arriving
    return start


def _dots_left(token: str) -> int:
    """The dots a JWT that begins ``token`` has still to come, by the parts its header says."""
    return max(0, v.jose_parts(token.split(".", 1)[0]) - 1 - token.count("."))


def _one_run(text: str, cut: int, at: int) -> bool:
    """Whether ``cut`` falls inside the run of non-space characters that reaches ``at``."""
    return cut > 0 and not text[cut - 1].isspace() and not any(c.isspace() for c in text[cut:at])


@dataclass(slots=True)
class _Block:
    """A private-key block being swallowed."""

    start: int  # its offset in the stream
    header: int  # length of its header
    body: PemBody
    raw: str  # body text past ``body.committed`` (not yet known to belong to the block)
    base: int  # body offset where ``raw`` begins
    recent: str  # the block's last LOOKBACK characters, context for what follows


@dataclass(slots=True)
class _Token:
    """A long token (a JWT, a named secret) swallowed to the end of its run of characters."""

    type: str
    chars: frozenset[str]
    start: int
    length: int
    dots: str = ""  # trailing dots: part of the token only if more token characters follow
    recent: str = ""
    dots_left: int = -1  # a JWT's dots still to come (its parts are counted); -1: any number


_JWT_START = re.compile(r"e(?:yJ|yA|wo)[A-Za-z0-9_\-]{8,}\.")
_JWT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
# The findings that may run past the window, and what they are made of.
_LONG_TOKENS = {"JWT": _JWT_CHARS, "GENERIC_SECRET": _JWT_CHARS | frozenset("+/~=")}


@dataclass(slots=True)
class StreamRedactor:
    """Redacts a stream of text deltas; ``feed`` then ``flush`` give the redacted text."""

    actions: Policy | Mapping[str, str] | str
    window: int = DEFAULT_WINDOW
    redacted: list[Span] = field(default_factory=list)
    flagged: list[Span] = field(default_factory=list)
    blocked: list[Span] = field(default_factory=list)
    max_held: int = 0  # the most text ever held back at once (for tests and metrics)
    policy: Policy = field(init=False)
    _ctx: str = ""
    _pending: str = ""
    _offset: int = 0  # stream offset of _pending[0]
    _block: _Block | None = None
    _token: _Token | None = None

    def __post_init__(self) -> None:
        if self.window < MIN_WINDOW:
            raise ValueError(f"the hold-back window must be at least {MIN_WINDOW} characters")
        self.policy = Policy.of(self.actions)

    @property
    def held(self) -> int:
        """Characters received but not yet sent (a swallowed key's raw line included)."""
        extra = len(self._block.raw) if self._block else len(self._token.dots) if self._token else 0
        return len(self._pending) + extra

    def feed(self, delta: str) -> str:
        if not self.policy.enabled:
            return delta
        out: list[str] = []
        self._take(delta, out, final=False)
        self.max_held = max(self.max_held, self.held)
        return "".join(out)

    def flush(self) -> str:
        """The stream ended: everything still held, redacted."""
        if not self.policy.enabled:
            return ""
        out: list[str] = []
        self._take("", out, final=True)
        return "".join(out)

    # --- the loop: a swallowed block or token first, then ordinary text ----------------------

    def _take(self, text: str, out: list[str], *, final: bool) -> None:
        while True:
            text = self._swallow(text, out, final=final)
            if self._swallowing():
                return
            self._pending += text
            self._release(out, final=final)
            if not self._swallowing():
                return
            text, self._pending = self._pending, ""  # the text after a key's header

    def _swallowing(self) -> bool:
        return self._block is not None or self._token is not None

    def _swallow(self, text: str, out: list[str], *, final: bool) -> str:
        """Feed a block or token being swallowed; the text after its end."""
        if self._block is not None:
            return self._follow_block(self._block, text, out, final=final)
        if self._token is not None:
            return self._follow_token(self._token, text, out, final=final)
        return text

    def _release(self, out: list[str], *, final: bool) -> None:
        ctx, pending = self._ctx, self._pending
        text = ctx + pending
        base = len(ctx)
        cut = len(text) if final else hold_from(text, base)
        opening = None if final else self._open_block(text, base)
        if opening is not None and "PRIVATE_KEY" not in self.policy.enabled:
            opening = None
        if opening is not None:
            cut = min(cut, opening[0].start())
        spans = scan(text, base, self.policy.enabled)
        for span in spans:
            if span.start < cut < span.end:
                cut = span.start
        # A key's block is followed from its header whatever its length; anything else held
        # past the window is cut.
        entering = opening is not None and cut == opening[0].start() and opening[1].certain_key
        long_token = None
        if not entering and len(text) - cut > self.window:
            cut, long_token = self._forced_cut(text, base, spans)
        self._emit(text, base, cut, [s for s in spans if s.end <= cut], out)
        if entering and opening is not None:
            self._enter_block(text, opening, out)
        elif long_token is not None:
            self._enter_token(text, cut, long_token, out)

    def _emit(self, text: str, base: int, cut: int, spans: list[Span], out: list[str]) -> None:
        out.append(apply(text, spans, self.policy, base, cut))
        shift = self._offset - base
        self._record([Span(s.start + shift, s.end + shift, s.type) for s in spans])
        self._pending = text[cut:]
        self._ctx = text[max(0, cut - LOOKBACK) : cut]
        self._offset += cut - base

    def _record(self, spans: list[Span]) -> None:
        blocked: list[Span] = []
        for span in spans:
            action = self.policy.action(span.type)
            {"redact": self.redacted, "flag": self.flagged, "block": blocked}[action].append(span)
        if blocked:
            self.blocked.extend(blocked)
            raise OutputBlocked(blocked)

    def _forced_cut(self, text: str, base: int, spans: list[Span]) -> tuple[int, str | None]:
        """The hold-back passed its window: where to cut, and the type of a long token that
        starts there and is still arriving (it is then swallowed rather than cut)."""
        forced = len(text) - self.window
        for span in spans:
            if span.end == len(text) and span.type in _LONG_TOKENS:
                return span.start, span.type
        if "JWT" in self.policy.enabled:  # a JWT whose signature has not arrived yet
            for m in _JWT_START.finditer(text, base):
                at = m.start()
                if at > 0 and text[at - 1] in _JWT_CHARS:
                    continue
                if all(c in _JWT_CHARS for c in text[at:]) and (
                    text.count(".", at) < v.jose_parts(m.group()[:-1])
                ):  # its last part may still be arriving (a complete one is a finding above)
                    return at, "JWT"
        for span in spans:
            # A finding across the cut goes out whole, redacted; so does one further on in the
            # same run of non-space characters, whose detector may need that run's start (a
            # URL's scheme and user before its password) which the next scan would not see.
            if span.end > forced and (span.start < forced or _one_run(text, forced, span.start)):
                return span.end, None
        return forced, None

    # --- private-key blocks ---------------------------------------------------------------

    @staticmethod
    def _open_block(text: str, base: int) -> tuple[re.Match[str], PemBody] | None:
        """The first private-key block in ``text[base:]`` whose end has not arrived yet."""
        if "-----BEGIN" not in text:
            return None
        for header in PEM_HEADER.finditer(text, base):
            body = PemBody()
            if body.feed(text[header.end() :]) is None:
                return header, body
        return None

    def _enter_block(
        self, text: str, opening: tuple[re.Match[str], PemBody], out: list[str]
    ) -> None:
        header, body = opening
        start = self._offset  # _emit has cut the text at the header
        body_text = text[header.end() :]
        known = text[header.start() : header.end()] + body_text[: body.committed]
        if self.policy.action("PRIVATE_KEY") == "block":
            span = Span(start, start + len(known), "PRIVATE_KEY")
            self.blocked.append(span)
            raise OutputBlocked([span])
        self._block = _Block(
            start,
            header.end() - header.start(),
            body,
            raw=body_text[body.committed :],
            base=body.committed,
            recent=(text[: header.end()] + body_text[: body.committed])[-LOOKBACK:],
        )
        out.append(marker("PRIVATE_KEY") if self.policy.replaces("PRIVATE_KEY") else known)
        self._pending = ""

    def _follow_block(self, block: _Block, text: str, out: list[str], *, final: bool) -> str:
        end = block.body.feed(text) if text else block.body.end
        if end is None and final:
            end = block.body.finish()
        block.raw += text
        if end is None:
            taken = block.body.committed - block.base
            self._pass_block_text(block, block.raw[:taken], out)
            block.raw, block.base = block.raw[taken:], block.body.committed
            return ""
        taken = end - block.base
        self._pass_block_text(block, block.raw[:taken], out)
        rest = block.raw[taken:]
        stop = block.start + block.header + end
        span = Span(block.start, stop, "PRIVATE_KEY")
        (self.flagged if self.policy.action("PRIVATE_KEY") == "flag" else self.redacted).append(
            span
        )
        self._ctx, self._offset, self._block = block.recent[-LOOKBACK:], stop, None
        return rest

    def _pass_block_text(self, block: _Block, text: str, out: list[str]) -> None:
        block.recent = (block.recent + text)[-LOOKBACK:]
        if self.policy.action("PRIVATE_KEY") == "flag":
            out.append(text)

    # --- long JWTs -------------------------------------------------------------------------

    def _enter_token(self, text: str, at: int, type_: str, out: list[str]) -> None:
        token = text[at:]
        stripped = token.rstrip(".")
        start = self._offset  # _emit has cut the text where the token starts
        if self.policy.action(type_) == "block":
            span = Span(start, start + len(stripped), type_)
            self.blocked.append(span)
            raise OutputBlocked([span])
        self._token = _Token(
            type_,
            _LONG_TOKENS[type_],
            start,
            len(stripped),
            token[len(stripped) :],
            text[-LOOKBACK:],
            dots_left=_dots_left(token) if type_ == "JWT" else -1,
        )
        out.append(marker(type_) if self.policy.replaces(type_) else stripped)
        self._pending = ""

    def _follow_token(self, token: _Token, text: str, out: list[str], *, final: bool) -> str:
        flag = self.policy.action(token.type) == "flag"
        taken = 0
        while taken < len(text) and text[taken] in token.chars:
            if text[taken] == "." and token.dots_left >= 0:
                if not token.dots_left:
                    break  # the JWT's last part has ended: what follows is text again
                token.dots_left -= 1
            taken += 1
        piece = token.dots + text[:taken]
        kept = piece.rstrip(".")
        token.dots = piece[len(kept) :]
        token.length += len(kept)
        token.recent = (token.recent + kept)[-LOOKBACK:]
        if flag:
            out.append(kept)
        if taken == len(text) and not final:
            return ""
        span = Span(token.start, token.start + token.length, token.type)
        (self.flagged if flag else self.redacted).append(span)
        self._ctx, self._offset, self._token = token.recent, span.end, None
        return token.dots + text[taken:]


# --- OpenAI streams ---------------------------------------------------------------------------


_TEXT_EVENT = (b'"content"', b'"text"', b'"delta"', b"[DONE]", b'"output"', b'"arguments"')
_DELTA = "response.output_text.delta"
_ARGS_DELTA = "response.function_call_arguments.delta"
_LEGACY_CALL = -1  # a chat choice's legacy function_call, beside its tool_calls by index
_REFUSAL = 1  # a chat choice's refusal is redacted under the key (index, _REFUSAL)


class RedactingObserver:
    """A :class:`~sidecar.stream.StreamObserver` that redacts the text of an OpenAI stream.

    Chat completions (``choices[i].delta.content``) and legacy completions
    (``choices[i].text``) get one redactor per choice index; the Responses API one per
    ``(output_index, content_index)`` of its ``output_text`` deltas, and its ``*.done`` and
    ``response.completed`` events carry the text as the client received it. Held-back text is
    sent with the choice's finish chunk, in a delta event just before ``output_text.done`` (the
    two events in one piece of bytes: an observer returns one) or before the first event that
    repeats the part's whole text when a server sends no ``output_text.done``, in a chunk
    before ``[DONE]`` (which is then sent from ``on_end``), or from ``on_end`` if the stream
    ended without those.
    The arguments of tool and function calls are held whole until the call is complete (the
    choice's finish chunk; the Responses API's ``function_call_arguments.done``), then redacted
    as in a whole answer, each string inside their JSON, and sent as one delta: only the whole
    JSON text can be redacted and stay JSON, and a client cannot act on half of one. The
    calls' other fields (id, name) pass at once.
    The Responses API numbers its events (``sequence_number``): an event added here takes the
    number of the event it precedes, and that event and every later one move up by one, so
    the numbers stay strictly increasing.
    A ``block`` finding raises :class:`~sidecar.stream.StopStream` with
    :func:`~sidecar.security.secrets.blocked_error`: the stream ends as stopped by policy, never
    as an upstream failure. Where text was changed or held back, ``logprobs`` are
    dropped from the event (they would spell out what was redacted).
    """

    def __init__(
        self, actions: Policy | Mapping[str, str] | str, *, window: int = DEFAULT_WINDOW
    ) -> None:
        self.policy = Policy.of(actions)
        self.window = window
        self.findings: list[Finding] = []
        self._redactors: dict[tuple[int, ...], StreamRedactor] = {}
        self._sent: dict[tuple[int, ...], list[str]] = {}  # Responses: text sent per part
        self._item_ids: dict[tuple[int, ...], Any] = {}  # Responses: each part's item_id
        self._kind = "chat"  # chat | completion | responses
        self._shared: dict[str, Any] = {}  # a chunk's id, model, created: for trailing chunks
        self._deferred: list[bytes] = []  # [DONE], sent after the held-back text
        # Call arguments held: chat by (choice, tool call index), Responses by (output_index, 0)
        self._calls: dict[tuple[int, int], list[str]] = {}
        self._call_items: dict[int, Any] = {}  # Responses: each call's item_id
        self._call_sent: dict[int, str] = {}  # Responses: the arguments sent, per output_index
        self._shift = 0  # Responses: events added so far, by which later numbers move up
        self._last_number: int | None = None  # Responses: the last sequence_number sent

    def on_event(self, event: bytes) -> bytes | None:
        if not self.policy.enabled:
            return event
        if not self._shift and not any(m in event for m in _TEXT_EVENT):
            return event
        try:
            return self._rewrite(event)
        except OutputBlocked as blocked:
            self._abandon()
            raise StopStream(blocked_error(blocked.types)) from None

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        if end.reason in (EndReason.POLICY, EndReason.CLIENT_GONE):
            return NO_EVENTS
        try:
            events = self._end_events()
        except OutputBlocked:  # too late to stop the stream: withhold the rest
            log.warning("output policy blocked the end of a stream; its last text is withheld")
            self._abandon()
            events = []
        return [*events, *self._deferred]

    # --- events -------------------------------------------------------------------------

    def _rewrite(self, event: bytes) -> bytes | None:
        obj = event_json(event)
        if obj is None and b"[DONE]" in event:
            events = self._end_events()
            if not events:
                return event
            self._deferred.append(event)
            return b"".join(events)
        if obj is None:
            return event
        kind = obj.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            self._kind = "responses"
            if self._renumber(obj):
                event = _with_json(event, obj)
            return self._responses_event(event, obj, kind)
        if isinstance(choices := obj.get("choices"), list):
            return self._chunk(event, obj, choices)
        return event

    def _chunk(self, event: bytes, obj: dict[str, Any], choices: list[Any]) -> bytes:
        self._shared = {k: obj[k] for k in ("id", "created", "model", "object") if k in obj}
        changed = False
        for choice in choices:
            if not isinstance(choice, dict) or not isinstance(index := choice.get("index", 0), int):
                continue
            holder, field_name = choice.get("delta"), "content"
            if not isinstance(holder, dict):
                holder, field_name, self._kind = choice, "text", "completion"
            changed |= self._choice_text(holder, field_name, choice, (index,))
            if field_name == "content":
                changed |= self._choice_text(holder, "refusal", choice, (index, _REFUSAL))
                changed |= self._choice_calls(holder, choice, index)
        return _with_json(event, obj) if changed else event

    def _choice_calls(self, delta: dict[str, Any], choice: dict[str, Any], index: int) -> bool:
        """Hold the arguments a chat delta carries; release the choice's calls, redacted, in
        its finish chunk."""
        changed = False
        for number, function in _call_functions(delta):
            if isinstance(arguments := function.get("arguments"), str) and arguments:
                self._calls.setdefault((index, number), []).append(arguments)
                function["arguments"] = ""
                changed = True
        if choice.get("finish_reason") is not None:
            keys = sorted(key for key in self._calls if key[0] == index)
            if keys:
                _put_calls(delta, {key[1]: self._release_call(key) for key in keys})
                changed = True
        return changed

    def _choice_text(
        self, holder: dict[str, Any], name: str, choice: dict[str, Any], key: tuple[int, ...]
    ) -> bool:
        text = holder.get(name)
        out = text
        if isinstance(text, str) and text:
            out = self._redactor(key).feed(text)
        if choice.get("finish_reason") is not None and key in self._redactors:
            rest = self._finish(key)
            if rest:
                out = (out or "") + rest
        if out == text:
            return False
        holder[name] = out
        if "logprobs" in choice:
            choice["logprobs"] = None
        return True

    def _responses_event(self, event: bytes, obj: dict[str, Any], kind: str) -> bytes | None:
        if kind.startswith("response.function_call_arguments."):
            return self._arguments_event(event, obj, kind)
        key = (_int(obj.get("output_index")), _int(obj.get("content_index")))
        if kind == _DELTA and isinstance(text := obj.get("delta"), str):
            if "item_id" in obj:
                self._item_ids.setdefault(key, obj["item_id"])
            out = self._redactor(key).feed(text)
            self._sent.setdefault(key, []).append(out)
            if out == text:
                return event
            obj["delta"] = out
            obj["logprobs"] = []
            return _with_json(event, obj)
        if kind == "response.output_text.done":
            rest = self._finish(key) if key in self._redactors else ""
            before = b""
            if rest:
                self._sent.setdefault(key, []).append(rest)
                before = _with_json(event, self._added([_delta_for(obj, rest)], obj)[0], _DELTA)
            if key in self._sent:
                obj["text"] = "".join(self._sent[key])
                obj["logprobs"] = []
            return before + _with_json(event, obj)
        # An event that repeats whole texts (a part or item done, the response completed) may
        # come without output_text.done before it: what is still held back goes first, so the
        # client's deltas and the repeated text agree.
        tail = self._flush_keys(self._repeated_keys(obj, kind))
        before = b"".join(self._tail_events(tail, self._repeated_calls(obj, kind), obj))
        if self._rewrite_parts(obj, kind) or before:  # (an event added moved its number)
            return before + _with_json(event, obj)
        return event

    def _arguments_event(self, event: bytes, obj: dict[str, Any], kind: str) -> bytes | None:
        """A Responses call's argument deltas are dropped and held; its ``done`` event is
        preceded by one delta of the whole arguments, redacted."""
        position = _int(obj.get("output_index"))
        if kind == _ARGS_DELTA and isinstance(text := obj.get("delta"), str):
            if "item_id" in obj:
                self._call_items.setdefault(position, obj["item_id"])
            self._calls.setdefault((position, 0), []).append(text)
            return None
        if kind != "response.function_call_arguments.done":
            return event
        if "item_id" in obj:
            self._call_items.setdefault(position, obj["item_id"])
        fresh = position not in self._call_sent
        arguments = self._call_arguments(position, obj.get("arguments"))
        if arguments is None:
            return event
        before = b""
        if fresh and arguments:
            added = self._added([self._arguments_delta(position, arguments)], obj)[0]
            before = _with_json(event, added, _ARGS_DELTA)
        obj["arguments"] = arguments
        return before + _with_json(event, obj)

    def _call_arguments(self, position: int, whole: object = None) -> str | None:
        """A Responses call's arguments as its client gets them: the held deltas redacted as
        one text, or (a call never streamed) the whole text redacted."""
        if position not in self._call_sent:
            if (position, 0) in self._calls:
                self._call_sent[position] = self._release_call((position, 0))
            elif isinstance(whole, str):
                self._call_sent[position] = self._redact_call(
                    whole, f"output[{position}].arguments"
                )
        return self._call_sent.get(position)

    def _arguments_delta(self, position: int, arguments: str) -> dict[str, Any]:
        delta: dict[str, Any] = {"type": _ARGS_DELTA}
        if position in self._call_items:
            delta["item_id"] = self._call_items[position]
        delta.update(output_index=position, delta=arguments)
        return delta

    def _renumber(self, obj: dict[str, Any]) -> bool:
        """Move a Responses event's number past the events added before it; whether it moved."""
        number = obj.get("sequence_number")
        if not isinstance(number, int):
            return False
        obj["sequence_number"] = number = number + self._shift
        self._last_number = number
        return bool(self._shift)

    def _added(
        self, added: list[dict[str, Any]], before: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Number Responses events the sidecar adds just before the event ``before`` (already
        renumbered), or at the end: they take its number and the next ones, and it moves past
        them, as will every later event."""
        if before is not None and isinstance(number := before.get("sequence_number"), int):
            before["sequence_number"] = self._last_number = number + len(added)
        elif self._last_number is not None:
            number = self._last_number + 1
            self._last_number = number + len(added) - 1
        else:
            return added  # a stream without numbers
        for offset, obj in enumerate(added):
            obj["sequence_number"] = number + offset
        self._shift += len(added)
        return added

    def _repeated_calls(self, obj: dict[str, Any], kind: str) -> list[tuple[int, int]]:
        """The held calls whose arguments this Responses event repeats."""
        if kind == "response.output_item.done":
            return [key for key in self._calls if key[0] == _int(obj.get("output_index"))]
        if isinstance(obj.get("response"), dict):
            return list(self._calls)
        return []

    def _repeated_keys(self, obj: dict[str, Any], kind: str) -> list[tuple[int, ...]]:
        """The parts whose text this event repeats, among those still held back."""
        if kind == "response.content_part.done":
            wanted = {(_int(obj.get("output_index")), _int(obj.get("content_index")))}
            return [key for key in self._redactors if key in wanted]
        if kind == "response.output_item.done":
            return [key for key in self._redactors if key[0] == _int(obj.get("output_index"))]
        if isinstance(obj.get("response"), dict):
            return list(self._redactors)
        return []

    def _rewrite_parts(self, obj: dict[str, Any], kind: str) -> bool:
        """The events that repeat whole texts: they get the text the client was sent."""
        if kind == "response.content_part.done" and isinstance(part := obj.get("part"), dict):
            key = (_int(obj.get("output_index")), _int(obj.get("content_index")))
            return self._set_text(part, key, f"output[{key[0]}].content[{key[1]}]")
        if kind == "response.output_item.done" and isinstance(item := obj.get("item"), dict):
            return self._item_texts(item, _int(obj.get("output_index")))
        if isinstance(response := obj.get("response"), dict) and isinstance(
            output := response.get("output"), list
        ):
            changed = False
            for position, item in enumerate(output):
                if isinstance(item, dict):
                    changed |= self._item_texts(item, position)
            return changed
        return False

    def _item_texts(self, item: dict[str, Any], position: int) -> bool:
        if item.get("type") == "function_call":
            arguments = self._call_arguments(position, item.get("arguments"))
            if arguments is None or arguments == item.get("arguments"):
                return False
            item["arguments"] = arguments
            return True
        changed = False
        for index, part in enumerate(item.get("content") or ()):
            if isinstance(part, dict):
                changed |= self._set_text(
                    part, (position, index), f"output[{position}].content[{index}]"
                )
        return changed

    def _set_text(self, part: dict[str, Any], key: tuple[int, ...], where: str) -> bool:
        if part.get("type") != "output_text" or not isinstance(text := part.get("text"), str):
            return False
        if key in self._sent:
            new = "".join(self._sent[key])
        else:  # a part that was never streamed: redact it whole
            result = redact(text, self.policy)
            if result.block:
                raise OutputBlocked(list(result.blocked))
            self.findings.extend(findings_of(result.spans, where, self.policy))
            self._sent[key] = [new := result.text]
        if new == text:
            return False
        part["text"] = new
        if "logprobs" in part:
            part["logprobs"] = []
        return True

    # --- redactors and what they still hold ----------------------------------------------

    def _redactor(self, key: tuple[int, ...]) -> StreamRedactor:
        redactor = self._redactors.get(key)
        if redactor is None:
            redactor = self._redactors[key] = StreamRedactor(self.policy, self.window)
        return redactor

    def _finish(self, key: tuple[int, ...]) -> str:
        redactor = self._redactors.pop(key)
        rest = redactor.flush()
        spans = [*redactor.redacted, *redactor.flagged, *redactor.blocked]
        self.findings.extend(findings_of(spans, _where(self._kind, key), self.policy))
        return rest

    def _release_call(self, key: tuple[int, int]) -> str:
        """A held call's arguments, redacted whole."""
        return self._redact_call("".join(self._calls.pop(key)), _call_where(self._kind, key))

    def _redact_call(self, arguments: str, where: str) -> str:
        redacted, found = redact_arguments(arguments, self.policy, where)
        self.findings.extend(found)
        if blocked := [Span(f.start, f.end, f.type) for f in found if f.action == "block"]:
            raise OutputBlocked(blocked)
        return redacted

    def _abandon(self) -> None:
        """A block ends the stream: what the open redactors found (the block included) is
        still reported, though their text is never sent."""
        for key, redactor in self._redactors.items():
            spans = [*redactor.redacted, *redactor.flagged, *redactor.blocked]
            self.findings.extend(findings_of(spans, _where(self._kind, key), self.policy))
        self._redactors.clear()
        self._calls.clear()

    def _end_events(self) -> list[bytes]:
        """All that is still held, as events: before ``[DONE]`` or at the stream's end."""
        return self._tail_events(self._flush_all(), list(self._calls))

    def _flush_all(self) -> dict[tuple[int, ...], str]:
        return self._flush_keys(list(self._redactors))

    def _flush_keys(self, keys: list[tuple[int, ...]]) -> dict[tuple[int, ...], str]:
        tail = {key: self._finish(key) for key in keys}
        return {key: text for key, text in tail.items() if text}

    def _tail_events(
        self,
        tail: dict[tuple[int, ...], str],
        calls: Sequence[tuple[int, int]] = (),
        before: dict[str, Any] | None = None,
    ) -> list[bytes]:
        """Held text (already flushed, in ``tail``) and held call arguments (``calls``, released
        here) as events: one delta event each in the Responses API (numbered to come just
        before the event ``before``, or last), one chunk for all choices in chat and legacy
        completions."""
        if self._kind == "responses":
            for key, text in tail.items():
                self._sent.setdefault(key, []).append(text)
            added = [(_delta_for(self._part_of(key), text), _DELTA) for key, text in tail.items()]
            for position, _ in calls:
                arguments = self._call_arguments(position) or ""
                added.append((self._arguments_delta(position, arguments), _ARGS_DELTA))
            if added:
                self._added([obj for obj, _ in added], before)
            return [_sse(obj, name) for obj, name in added]
        deltas: dict[int, dict[str, Any]] = {}
        for key, text in sorted(tail.items()):
            deltas.setdefault(key[0], {})[_chat_field(self._kind, key)] = text
        for key in sorted(calls):
            _put_calls(deltas.setdefault(key[0], {}), {key[1]: self._release_call(key)})
        if not deltas:
            return []
        choices = [
            {"index": index, **(delta if self._kind == "completion" else {"delta": delta})}
            | {"logprobs": None, "finish_reason": None}
            for index, delta in sorted(deltas.items())
        ]
        return [_sse({**self._shared, "choices": choices})]

    def _part_of(self, key: tuple[int, ...]) -> dict[str, Any]:
        """A Responses part's address, for a delta event the sidecar adds."""
        part: dict[str, Any] = {"output_index": key[0], "content_index": key[1]}
        if key in self._item_ids:
            part["item_id"] = self._item_ids[key]
        return part


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _where(kind: str, key: tuple[int, ...]) -> str:
    if kind == "responses":
        return f"output[{key[0]}].content[{key[1]}]"
    if kind == "completion":
        return f"choices[{key[0]}].text"
    return f"choices[{key[0]}].delta.{_chat_field(kind, key)}"


def _chat_field(kind: str, key: tuple[int, ...]) -> str:
    """The field a chat or legacy completion choice's text key stands for."""
    if kind == "completion":
        return "text"
    return "refusal" if key[1:] == (_REFUSAL,) else "content"


def _call_where(kind: str, key: tuple[int, int]) -> str:
    if kind == "responses":
        return f"output[{key[0]}].arguments"
    if key[1] == _LEGACY_CALL:
        return f"choices[{key[0]}].delta.function_call.arguments"
    return f"choices[{key[0]}].delta.tool_calls[{key[1]}].function.arguments"


def _call_functions(delta: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(tool call index or ``_LEGACY_CALL``, its ``function`` object) for each call a chat
    delta carries."""
    functions = []
    for call in delta.get("tool_calls") or ():
        if isinstance(call, dict) and isinstance(function := call.get("function"), dict):
            functions.append((_int(call.get("index")), function))
    if isinstance(function := delta.get("function_call"), dict):
        functions.append((_LEGACY_CALL, function))
    return functions


def _put_calls(delta: dict[str, Any], arguments: Mapping[int, str]) -> None:
    """Set calls' arguments in a chat delta, adding the calls it does not carry yet."""
    for number, text in arguments.items():
        if number == _LEGACY_CALL:
            if not isinstance(delta.get("function_call"), dict):
                delta["function_call"] = {}
            delta["function_call"]["arguments"] = text
            continue
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            calls = delta["tool_calls"] = []
        call = next((c for c in calls if isinstance(c, dict) and c.get("index") == number), None)
        if call is None:
            calls.append(call := {"index": number})
        if not isinstance(call.get("function"), dict):
            call["function"] = {}
        call["function"]["arguments"] = text


def _delta_for(obj: dict[str, Any], text: str) -> dict[str, Any]:
    delta: dict[str, Any] = {"type": _DELTA}
    delta.update((k, obj[k]) for k in ("item_id", "output_index", "content_index") if k in obj)
    delta.update(delta=text, logprobs=[])
    return delta


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _with_json(event: bytes, obj: dict[str, Any], name: str | None = None) -> bytes:
    """The event with its data replaced (its ``event:`` line kept, or set to ``name``)."""
    if name is None:
        for line in event.splitlines():
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
                break
    return _sse(obj, name)
