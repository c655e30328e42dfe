"""Stream redaction: the same result as the whole text, a bounded hold-back, and the OpenAI
event streams rewritten so the official SDK still reads them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar import stream
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Reply
from sidecar.replay import DONE, ChatAssembler, event_json, responses_events
from sidecar.security.secrets import Span, marker, redact, redact_answer, redact_body
from sidecar.security.stream_redact import (
    DEFAULT_WINDOW,
    OutputBlocked,
    RedactingObserver,
    StreamRedactor,
)
from sidecar.stream import EndReason, StreamEnd
from tests.helpers import APP_KEY, ServerFactory, exchange
from tests.security.secret_examples import (
    ALNUM,
    ANTHROPIC,
    GITHUB,
    LONG_JWT,
    LOOKALIKES,
    OPENAI,
    POSITIVES,
    RSA_KEY,
    SESSION_JWT,
    token,
)

FILLER = [
    "The answer is",
    "below.",
    "\n",
    " ",
    "  ",
    "ok,",
    "see",
    "(here)",
    "v1.2",
    "2024",
    "-",
    "\n\n",
]
FRAGMENTS = [t for t, _, _ in POSITIVES] + LOOKALIKES + FILLER


def streamed(
    text: str, cuts: Sequence[int], actions: str | dict[str, str] = "redact"
) -> tuple[str, StreamRedactor]:
    """``text`` fed in the pieces ``cuts`` makes, then flushed."""
    redactor = StreamRedactor(actions)
    bounds = [0, *sorted(set(cuts)), len(text)]
    out = [redactor.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    out.append(redactor.flush())
    return "".join(out), redactor


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[str, list[int]]:
    text = "".join(draw(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8)))
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=40))
    return text, cuts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_and_cuts())
def test_streamed_redaction_equals_whole_text_redaction(case: tuple[str, list[int]]) -> None:
    """However the text is cut into deltas, the stream says what the whole text says, and
    reports the same spans at the same offsets."""
    text, cuts = case
    whole = redact(text, "redact")
    out, redactor = streamed(text, cuts)
    assert out == whole.text
    assert sorted(redactor.redacted, key=lambda s: s.start) == list(whole.redacted)
    assert redactor.max_held <= DEFAULT_WINDOW


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_and_cuts())
def test_flagging_streams_the_text_unchanged(case: tuple[str, list[int]]) -> None:
    text, cuts = case
    out, redactor = streamed(text, cuts, "flag")
    assert out == text
    assert sorted(redactor.flagged, key=lambda s: s.start) == list(redact(text, "flag").flagged)


_PEM_LOOKALIKE = "The header looks like -----BEGIN PRIVATE KEY----- followed by base64."
_DB_URL = "Set DATABASE_URL=postgres://admin:S3cr3tPassw0rd@db.internal:5432/app and restart."
_KEY = f"Use this key: {OPENAI} (rotate it)"


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        # The window forced a cut between the URL's scheme and its password: the next scan
        # no longer saw a URL, and the password went out.
        (_PEM_LOOKALIKE + _DB_URL + _KEY * 3, 607),
        # A JWT still arriving at the window, then run into the next sentence (".Use"): the
        # stream swallowed ".Use" with it, the whole text did not see a JWT at all.
        (_PEM_LOOKALIKE + _KEY * 2 + f"The cookie was {SESSION_JWT}." + _KEY, 535),
    ],
)
def test_cuts_hypothesis_found_at_the_window(text: str, cut: int) -> None:
    whole = redact(text, "redact")
    out, redactor = streamed(text, [cut])
    assert out == whole.text
    assert sorted(redactor.redacted, key=lambda s: s.start) == list(whole.redacted)
    assert "S3cr3tPassw0rd" not in out
    assert SESSION_JWT not in out


@pytest.mark.parametrize("secret", [OPENAI, ANTHROPIC, GITHUB, SESSION_JWT])
def test_a_secret_split_at_any_point_is_still_caught(secret: str) -> None:
    """Two deltas, cut at every position of the secret: never a piece of it in the output."""
    text = f"Your key is {secret} - keep it."
    for cut in range(12, 12 + len(secret) + 1):
        out, _ = streamed(text, [cut])
        assert out == f"Your key is {marker(redact(secret, 'redact').redacted[0].type)} - keep it."


def test_plain_text_passes_at_once_but_for_a_partial_word() -> None:
    """Without a candidate only the trailing partial word is held (it could become an
    address); a finished line is sent whole."""
    redactor = StreamRedactor("redact")
    assert redactor.feed("The cache is warm and the ans") == "The cache is warm and the "
    assert redactor.held == 3
    assert redactor.feed("wer is 42.\n") == "answer is 42.\n"
    assert redactor.held == 0


def test_spaced_digit_groups_are_held_until_the_number_ends() -> None:
    """A card number arriving group by group is not sent before it can be judged."""
    redactor = StreamRedactor("redact")
    out = [redactor.feed(piece) for piece in ("Card 5555 ", "5555 5555", " 4444", ", thanks")]
    assert out[0] == "Card "
    assert "".join(out) + redactor.flush() == f"Card {marker('CREDIT_CARD')}, thanks"


def test_the_hold_back_never_exceeds_the_window() -> None:
    """A run of token characters longer than the window is sent from its oldest end."""
    redactor = StreamRedactor("redact", window=256)
    blob = "A9" * 400
    sent = "".join(redactor.feed(blob[i : i + 30]) for i in range(0, len(blob), 30))
    assert redactor.max_held <= 256
    assert sent + redactor.flush() == blob


def test_a_long_jwt_is_swallowed_whole_past_the_window() -> None:
    """A JWT longer than the window is replaced as soon as its header validates."""
    assert len(LONG_JWT) > 600
    text = f"token: {LONG_JWT}. Done"
    redactor = StreamRedactor("redact", window=256)
    out = "".join(redactor.feed(text[i : i + 25]) for i in range(0, len(text), 25))
    assert marker("JWT") in out  # before the stream ended
    assert out + redactor.flush() == redact(text, "redact").text == f"token: {marker('JWT')}. Done"
    assert redactor.max_held <= 256
    assert redactor.redacted == [Span(7, 7 + len(LONG_JWT), "JWT")]


def test_a_long_named_secret_is_swallowed_past_the_window() -> None:
    """An AWS session token (~1 kB) under its name is replaced once the window is full."""
    session = token(900, ALNUM + "+/")
    text = f"aws_session_token = {session}\nregion = us-east-1"
    redactor = StreamRedactor("redact")
    out = "".join(redactor.feed(text[i : i + 40]) for i in range(0, len(text), 40))
    assert redactor.max_held <= DEFAULT_WINDOW
    expected = f"aws_session_token = {marker('GENERIC_SECRET')}\nregion = us-east-1"
    assert out + redactor.flush() == redact(text, "redact").text == expected


def test_a_private_key_is_replaced_before_its_end_arrives_and_never_sent() -> None:
    """Once key material follows the header the marker goes out; the body is dropped line by
    line, so the hold-back stays at about a line."""
    text = f"Here:\n{RSA_KEY}\nDone."
    redactor = StreamRedactor("redact")
    out, lines = [], text.splitlines(keepends=True)
    for line in lines[:4]:
        out.append(redactor.feed(line))
        assert redactor.held <= 80
    assert marker("PRIVATE_KEY") in "".join(out)
    out += [redactor.feed(line) for line in lines[4:]]
    result = "".join(out) + redactor.flush()
    assert result == redact(text, "redact").text == f"Here:\n{marker('PRIVATE_KEY')}\nDone."
    assert redactor.redacted == [Span(6, 6 + len(RSA_KEY), "PRIVATE_KEY")]


def test_a_private_key_arriving_in_deltas_longer_than_the_window_is_still_whole() -> None:
    """A delta with more key material than the window holds is not cut by the window."""
    text = f"Here:\n{RSA_KEY}\nDone."
    assert len(RSA_KEY) > DEFAULT_WINDOW + 100
    for cut in (DEFAULT_WINDOW + 20, len(text) - 40):
        out, redactor = streamed(text, [cut])
        assert out == f"Here:\n{marker('PRIVATE_KEY')}\nDone."
        assert redactor.redacted == [Span(6, 6 + len(RSA_KEY), "PRIVATE_KEY")]


def test_block_raises_as_soon_as_the_finding_is_certain() -> None:
    redactor = StreamRedactor({"*": "redact", "OPENAI_KEY": "block"})
    assert redactor.feed("mail ana@example.org and ") == f"mail {marker('EMAIL')} and "
    with pytest.raises(OutputBlocked) as blocked:
        redactor.feed(f"{OPENAI} ")
    assert blocked.value.types == ["OPENAI_KEY"]
    blocked_key = StreamRedactor({"PRIVATE_KEY": "block"})
    with pytest.raises(OutputBlocked):
        blocked_key.feed(RSA_KEY[:60])


# --- OpenAI streams through the relay --------------------------------------------------------


def chat_chunk(
    content: str | None = None,
    *,
    index: int = 0,
    finish: str | None = None,
    delta: dict[str, Any] | None = None,
) -> bytes:
    if delta is None:
        delta = {} if content is None else {"content": content}
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def pieces(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def chat_events(text: str, *, done: bool = True) -> list[bytes]:
    events = [chat_chunk("")] + [chat_chunk(p) for p in pieces(text)] + [chat_chunk(finish="stop")]
    return [*events, DONE] if done else events


async def source(events: Sequence[bytes], error: Exception | None = None) -> AsyncGenerator[bytes]:
    for event in events:
        yield event
    if error is not None:
        raise error


class Ends:
    """An observer after the redactor: records how the stream ended."""

    def __init__(self) -> None:
        self.ends: list[StreamEnd] = []

    def on_event(self, event: bytes) -> bytes | None:
        return event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        self.ends.append(end)
        return ()


async def relayed(
    events: Sequence[bytes],
    observer: RedactingObserver,
    path: str = "chat/completions",
    error: Exception | None = None,
) -> tuple[list[bytes], Ends]:
    ends = Ends()
    reply = Reply(200, stream=source(events, error), observers=[observer, ends])
    return [e async for e in stream.relay(reply, exchange(path))], ends


def chat_text(events: list[bytes]) -> str:
    assembler = ChatAssembler()
    for event in events:
        if (obj := event_json(event)) is not None:
            assembler.add(obj)
    answer = assembler.completion(None)
    assert answer is not None
    return str(answer["choices"][0]["message"]["content"])


TEXT = f"Sure. Key {OPENAI}, mail ana@example.org, card 5555 5555 5555 4444 and ip 203.0.113.9"


async def test_a_chat_stream_reads_as_the_whole_text_redacted() -> None:
    events, ends = await relayed(chat_events(TEXT), RedactingObserver("redact"))
    assert chat_text(events) == redact(TEXT, "redact").text
    assert events[-1] == DONE
    assert not any(OPENAI[10:30].encode() in e for e in events)
    assert ends.ends[0].reason is EndReason.COMPLETED


async def test_held_text_rides_on_the_finish_chunk() -> None:
    """The text still held when a choice finishes goes out in that choice's finish chunk."""
    text = "Write to ana@example.org"
    events, _ = await relayed(chat_events(text), RedactingObserver("redact"))
    finish = next(e for e in events if b'"finish_reason":"stop"' in e)
    assert (event_json(finish) or {})["choices"][0]["delta"]["content"] == marker("EMAIL")


async def test_held_text_goes_out_before_done_when_no_finish_chunk_came() -> None:
    text = "call +1 (650) 253-0000"
    events = [chat_chunk(p) for p in pieces(text)] + [DONE]
    out, _ = await relayed(events, RedactingObserver("redact"))
    assert out[-1] == DONE
    contents = [
        c["delta"].get("content") or "" for e in out[:-1] for c in (event_json(e) or {})["choices"]
    ]
    assert "".join(contents) == f"call {marker('PHONE')}"


async def test_choices_are_redacted_separately() -> None:
    """Two choices interleaved: each choice's text is its own stream."""
    first, second = "mail ana@example.org", f"key {GITHUB}"
    events = []
    for a, b in zip(pieces(first, 3), pieces(second, 3), strict=False):
        events += [chat_chunk(a, index=0), chat_chunk(b, index=1)]
    events += [chat_chunk(p, index=1) for p in pieces(second, 3)[len(pieces(first, 3)) :]]
    events += [chat_chunk(finish="stop", index=0), chat_chunk(finish="stop", index=1), DONE]
    out, _ = await relayed(events, RedactingObserver("redact"))
    assembler = ChatAssembler()
    for event in out:
        if (obj := event_json(event)) is not None:
            assembler.add(obj)
    answer = assembler.completion(None) or {}
    assert [c["message"]["content"] for c in answer["choices"]] == [
        f"mail {marker('EMAIL')}",
        f"key {marker('GITHUB_TOKEN')}",
    ]


async def test_a_block_ends_the_stream_by_policy_not_as_an_upstream_failure() -> None:
    """The client gets the text before the secret, then the error event; observers after the
    redactor hear POLICY, which breakers and retry budgets do not count."""
    text = f"Here is the key: {OPENAI} and more"
    out, ends = await relayed(chat_events(text), RedactingObserver({"OPENAI_KEY": "block"}))
    error = event_json(out[-1]) or {}
    assert error["error"]["code"] == "INVALID_INPUT"
    assert error["error"]["reason"] == "sensitive_output"
    assert not any(OPENAI[:12].encode() in e for e in out)
    assert ends.ends[0].reason is EndReason.POLICY
    assert not ends.ends[0].upstream_failed


async def test_held_text_is_sent_before_an_upstream_error_event() -> None:
    text = "reach me at ana@example.org"
    events = [chat_chunk(p) for p in pieces(text)]
    broke = SidecarError(ErrorCode.NETWORK, "upstream broke")
    out, ends = await relayed(events, RedactingObserver("redact"), error=broke)
    assert ends.ends[0].reason is EndReason.UPSTREAM_ERROR
    contents = [
        c["delta"].get("content") or "" for e in out[:-1] for c in (event_json(e) or {})["choices"]
    ]
    assert "".join(contents) == f"reach me at {marker('EMAIL')}"
    assert (event_json(out[-1]) or {})["error"]["code"] == "NETWORK"


async def test_a_legacy_completion_stream_is_redacted() -> None:
    text = "SSN 219-48-3321 on file"
    chunk = {"object": "text_completion", "id": "x", "model": "m"}
    events = [
        b"data: "
        + orjson.dumps({**chunk, "choices": [{"index": 0, "text": p, "finish_reason": None}]})
        + b"\n\n"
        for p in pieces(text, 4)
    ]
    events.append(DONE)
    out, _ = await relayed(events, RedactingObserver("redact"), path="completions")
    texts = [c.get("text") or "" for e in out if (obj := event_json(e)) for c in obj["choices"]]
    assert "".join(texts) == f"SSN {marker('US_SSN')} on file"
    assert out[-1] == DONE


def responses_stream(text: str) -> list[bytes]:
    """A Responses API stream whose text arrives in several deltas."""
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    return split_deltas(item, "response.output_text.delta", text, 5)


def split_deltas(item: dict[str, Any], kind: str, text: str, size: int) -> list[bytes]:
    """The Responses API stream of a response with one output ``item``, its ``kind`` delta
    events (``text`` in ``size``-character pieces) instead of one."""
    response = {
        **{"id": "resp_1", "object": "response", "created_at": 1, "model": "m"},
        **{"status": "completed", "output": [item], "usage": None},
    }
    events = []
    for event in responses_events(response):
        obj = event_json(event) or {}
        if obj.get("type") != kind:
            events.append(event)
            continue
        for piece in pieces(text, size):
            delta = {**obj, "delta": piece}
            events.append(f"event: {kind}\ndata: ".encode() + orjson.dumps(delta) + b"\n\n")
    return numbered(events)


def numbered(events: list[bytes]) -> list[bytes]:
    """The events with their sequence numbers counted again from 0, as a server sends them."""
    out = []
    for number, event in enumerate(events):
        obj = event_json(event) or {}
        kind = obj["type"]
        obj["sequence_number"] = number
        out.append(f"event: {kind}\ndata: ".encode() + orjson.dumps(obj) + b"\n\n")
    return out


async def test_a_responses_stream_is_redacted_in_deltas_and_in_its_final_texts() -> None:
    text = f"token {GITHUB} for ana@example.org"
    expected = redact(text, "redact").text
    out, _ = await relayed(responses_stream(text), RedactingObserver("redact"), path="responses")
    objs = [obj for e in out for obj in _all_json(e)]
    deltas = "".join(o["delta"] for o in objs if o.get("type") == "response.output_text.delta")
    assert deltas == expected
    done = next(o for o in objs if o.get("type") == "response.output_text.done")
    assert done["text"] == expected
    final = next(o for o in objs if o.get("type") == "response.completed")
    assert final["response"]["output"][0]["content"][0]["text"] == expected
    assert not any(GITHUB.encode() in e for e in out)


async def test_a_responses_stream_without_done_events_keeps_its_held_tail_in_place() -> None:
    """Some OpenAI-compatible servers send no output_text.done / content_part.done: the text
    held back at the end (digits that could start a number) goes out just before the event
    that repeats the whole text, with the part's item_id, and that text is the full one."""
    text = "echo#33: resp test 77"
    events = [
        e
        for e in responses_stream(text)
        if (event_json(e) or {}).get("type")
        not in ("response.output_text.done", "response.content_part.done")
    ]
    out, _ = await relayed(events, RedactingObserver("redact"), path="responses")
    objs = [obj for e in out for obj in _all_json(e)]
    kinds = [o.get("type") for o in objs]
    deltas = [o for o in objs if o.get("type") == "response.output_text.delta"]
    assert "".join(d["delta"] for d in deltas) == text
    assert all(d.get("item_id") == "msg_1" for d in deltas)
    assert kinds.index("response.output_item.done") > max(
        i for i, kind in enumerate(kinds) if kind == "response.output_text.delta"
    )
    final = next(o for o in objs if o.get("type") == "response.completed")
    assert final["response"]["output"][0]["content"][0]["text"] == text


# --- tool and function call arguments ---------------------------------------------------------

ARGUMENTS = orjson.dumps({"to": "ana@example.org", "note": f"use {OPENAI}", "n": 3}).decode()
REDACTED_ARGUMENTS = {"to": marker("EMAIL"), "note": redact(f"use {OPENAI}", "redact").text, "n": 3}


def call_deltas(arguments: str, number: int = 0, name: str = "send") -> list[bytes]:
    """A chat tool call: its opening (id, name), then its arguments in 6-character deltas."""
    opening = {"index": number, "id": f"call_{number}", "type": "function"}
    opening["function"] = {"name": name, "arguments": ""}
    return [chat_chunk(delta={"role": "assistant", "tool_calls": [opening]})] + [
        chat_chunk(delta={"tool_calls": [{"index": number, "function": {"arguments": p}}]})
        for p in pieces(arguments, 6)
    ]


def assembled(events: list[bytes]) -> dict[str, Any]:
    assembler = ChatAssembler()
    for event in events:
        for obj in _all_json(event):
            assembler.add(obj)
    answer = assembler.completion(None)
    assert answer is not None
    return answer


async def test_tool_call_arguments_are_held_whole_and_redacted_as_json() -> None:
    """The arguments go out once, with the finish chunk, redacted value by value (so they still
    parse); the call's id and name are not held; no piece of the key is ever sent."""
    events = [*call_deltas(ARGUMENTS), chat_chunk(finish="tool_calls"), DONE]
    out, ends = await relayed(events, RedactingObserver("redact"))
    call = assembled(out)["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"]) == ("call_0", "send")
    assert orjson.loads(call["function"]["arguments"]) == REDACTED_ARGUMENTS
    finish = event_json(next(e for e in out if b'"finish_reason":"tool_calls"' in e)) or {}
    sent = finish["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    assert sent == call["function"]["arguments"]
    assert not any(OPENAI[10:30].encode() in e or b"ana@" in e for e in out)
    assert ends.ends[0].reason is EndReason.COMPLETED


def sent_arguments(events: list[bytes]) -> dict[int | None, Any]:
    """The arguments a client reads from a chat stream, parsed, per tool call index (None for a
    legacy function call)."""
    texts: dict[int | None, str] = {}
    for delta in (c["delta"] for e in events for o in _all_json(e) for c in o["choices"]):
        for call in delta.get("tool_calls") or ():
            texts[call["index"]] = texts.get(call["index"], "") + call["function"]["arguments"]
        if function := delta.get("function_call"):
            texts[None] = texts.get(None, "") + function.get("arguments", "")
    return {number: orjson.loads(text) for number, text in texts.items()}


async def test_calls_left_open_go_out_before_done_each_to_its_own_call() -> None:
    """Two tool calls and a legacy function call, no finish chunk: all arguments are sent,
    each redacted on its own, before [DONE]."""
    second = orjson.dumps({"card": "5555 5555 5555 4444"}).decode()
    legacy = {"function_call": {"name": "old", "arguments": '{"ip": "203.0.113.9"}'}}
    events = [*call_deltas(ARGUMENTS), *call_deltas(second, 1, "pay"), chat_chunk(delta=legacy)]
    out, _ = await relayed([*events, DONE], RedactingObserver("redact"))
    assert out[-1] == DONE
    assert sent_arguments(out) == {
        0: REDACTED_ARGUMENTS,
        1: {"card": marker("CREDIT_CARD")},
        None: {"ip": marker("IP_ADDRESS")},
    }


async def test_a_streamed_refusal_is_redacted_apart_from_the_content() -> None:
    refusal = "I won't charge 5555 5555 5555 4444 or mail ana@example.org."
    events = [chat_chunk(delta={"refusal": p}) for p in pieces(refusal, 5)]
    out, _ = await relayed([*events, chat_chunk(finish="stop"), DONE], RedactingObserver("redact"))
    message = assembled(out)["choices"][0]["message"]
    assert message["refusal"] == redact(refusal, "redact").text
    assert not message.get("content")


async def test_a_blocked_type_in_call_arguments_stops_the_stream_by_policy() -> None:
    events = [*call_deltas(ARGUMENTS), chat_chunk(finish="tool_calls"), DONE]
    observer = RedactingObserver({"EMAIL": "block", "*": "redact"})
    out, ends = await relayed(events, observer)
    assert (event_json(out[-1]) or {})["error"]["reason"] == "sensitive_output"
    assert not any(b"ana@" in e for e in out)
    assert ends.ends[0].reason is EndReason.POLICY
    assert {(f.type, f.where) for f in observer.findings} >= {
        ("EMAIL", "choices[0].delta.tool_calls[0].function.arguments.to")
    }


def responses_call_stream(arguments: str) -> list[bytes]:
    """A Responses API stream whose one function call's arguments arrive in several deltas."""
    item = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "send"}
    item |= {"arguments": arguments, "status": "completed"}
    return split_deltas(item, "response.function_call_arguments.delta", arguments, 6)


async def test_a_responses_function_call_is_redacted_in_its_delta_and_its_final_texts() -> None:
    out, _ = await relayed(
        responses_call_stream(ARGUMENTS), RedactingObserver("redact"), path="responses"
    )
    objs = [obj for e in out for obj in _all_json(e)]
    deltas = [o for o in objs if o.get("type") == "response.function_call_arguments.delta"]
    assert len(deltas) == 1
    assert deltas[0]["item_id"] == "fc_1"
    assert orjson.loads(deltas[0]["delta"]) == REDACTED_ARGUMENTS
    done = next(o for o in objs if o.get("type") == "response.function_call_arguments.done")
    item = next(o for o in objs if o.get("type") == "response.output_item.done")["item"]
    final = next(o for o in objs if o.get("type") == "response.completed")["response"]
    assert done["arguments"] == item["arguments"] == final["output"][0]["arguments"]
    assert done["arguments"] == deltas[0]["delta"]
    assert not any(OPENAI[10:30].encode() in e or b"ana@" in e for e in out)


def _without(events: list[bytes], *kinds: str) -> list[bytes]:
    return [e for e in events if (event_json(e) or {}).get("type") not in kinds]


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(responses_stream(f"key {GITHUB} ends 77"), id="held-tail-before-done"),
        pytest.param(
            _without(
                responses_stream("echo#33: resp test 77"),
                "response.output_text.done",
                "response.content_part.done",
            ),
            id="no-done-events",
        ),
        pytest.param(responses_call_stream(ARGUMENTS), id="function-call"),
        pytest.param(responses_stream("pay 4111 1111")[:-4], id="cut-short"),
    ],
)
async def test_events_the_sidecar_adds_keep_sequence_numbers_increasing(
    events: list[bytes],
) -> None:
    """A delta added for held-back text takes the number of the event it precedes, and the
    events after it move up: every event sent has a number, none is sent twice, none goes
    backwards."""
    out, _ = await relayed(events, RedactingObserver("redact"), path="responses")
    sent = [obj for e in out for obj in _all_json(e)]
    numbers = [obj["sequence_number"] for obj in sent]
    assert numbers == sorted(set(numbers))
    assert len(numbers) >= 7
    assert any(obj not in _all_json(b"".join(events)) for obj in sent)  # events were added


def _all_json(event: bytes) -> list[dict[str, Any]]:
    """Every data object in a chunk that may hold more than one event."""
    return [orjson.loads(line[5:]) for line in event.splitlines() if line.startswith(b"data: {")]


# --- the official SDK reads the rewritten streams --------------------------------------------


def relaying_app(events: Sequence[bytes], path: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        reply = Reply(200, stream=source(events), observers=[RedactingObserver("redact")])
        async for event in stream.relay(reply, exchange(path)):
            await response.write(event)
        return response

    app = web.Application()
    app.router.add_post(f"/v1/{path}", handle)
    return app


async def test_the_sdk_reads_a_redacted_chat_stream(aiohttp_server: ServerFactory) -> None:
    server = await aiohttp_server(relaying_app(chat_events(TEXT), "chat/completions"))
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key=APP_KEY, max_retries=0
    ) as client:
        chunks = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    assert text == redact(TEXT, "redact").text


async def test_the_sdk_reads_a_redacted_responses_stream(aiohttp_server: ServerFactory) -> None:
    text = f"mail ana@example.org, key {ANTHROPIC}"
    server = await aiohttp_server(relaying_app(responses_stream(text), "responses"))
    client = openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key=APP_KEY, max_retries=0
    )
    async with client, client.responses.stream(model="m", input="hi") as events:
        deltas = [e.delta async for e in events if e.type == "response.output_text.delta"]
        final = await events.get_final_response()
    assert "".join(deltas) == final.output_text == redact(text, "redact").text


async def test_the_sdk_reads_redacted_tool_call_streams(aiohttp_server: ServerFactory) -> None:
    chat = [*call_deltas(ARGUMENTS), chat_chunk(finish="tool_calls"), DONE]
    chat_server = await aiohttp_server(relaying_app(chat, "chat/completions"))
    responses_server = await aiohttp_server(
        relaying_app(responses_call_stream(ARGUMENTS), "responses")
    )
    async with openai.AsyncOpenAI(
        base_url=str(chat_server.make_url("/v1")), api_key=APP_KEY, max_retries=0
    ) as client:
        chunks = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        calls = [c.choices[0].delta.tool_calls or [] async for c in chunks if c.choices]
    arguments = "".join(
        call.function.arguments or "" for cs in calls for call in cs if call.function
    )
    assert orjson.loads(arguments) == REDACTED_ARGUMENTS
    client = openai.AsyncOpenAI(
        base_url=str(responses_server.make_url("/v1")), api_key=APP_KEY, max_retries=0
    )
    async with client, client.responses.stream(model="m", input="hi") as events:
        final = await events.get_final_response()
    call = final.output[0]
    assert call.type == "function_call"
    assert orjson.loads(call.arguments) == REDACTED_ARGUMENTS


# --- whole answers ----------------------------------------------------------------------------


def test_a_chat_completion_answer_is_redacted_in_place() -> None:
    answer: dict[str, Any] = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}}]
    }
    result = redact_answer(answer, "redact")
    assert answer["choices"][0]["message"]["content"] == redact(TEXT, "redact").text
    assert result.changed
    assert not result.block
    assert {f.where for f in result.findings} == {"choices[0].message.content"}


def test_responses_and_legacy_answers_and_blocks() -> None:
    part = {"type": "output_text", "text": f"key {GITHUB}"}
    body = orjson.dumps(
        {
            "output": [{"type": "message", "content": [part]}],
            "choices": [{"index": 0, "text": "ip 203.0.113.9"}],
        }
    )
    new_body, result = redact_body(body, {"GITHUB_TOKEN": "block", "*": "redact"})
    answer = orjson.loads(new_body)
    assert answer["output"][0]["content"][0]["text"] == f"key {marker('GITHUB_TOKEN')}"
    assert answer["choices"][0]["text"] == f"ip {marker('IP_ADDRESS')}"
    assert result.block
    assert result.blocked_types == ["GITHUB_TOKEN"]
    unchanged = orjson.dumps({"choices": [{"index": 0, "message": {"content": "nothing here"}}]})
    assert redact_body(unchanged, "redact")[0] is unchanged
    assert redact_body(b"not json", "redact")[0] == b"not json"


PGP_KEY = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
    "lQOYBF0n8xUBCAC3q1aZ9fXk2hG7mN4pR8sT1vW6yB3cD5eF0gH2iJ4kL6mN8oP0qR2s\n"
    "T4uV6wX8yZ0aB2cD4eF6gH8iJ0kL2mN4oP6qR8sT0uV2wX4yZ6aB8cD0eF2gH4iJ6kL8m\n"
    "=Xy4Z\n-----END PGP PRIVATE KEY BLOCK-----"
)


@pytest.mark.parametrize("cut", [1, 7, 38, 39, 40, 64])
def test_an_openpgp_armor_with_a_blank_line_after_its_header_is_a_key(cut: int) -> None:
    """OpenPGP armor is header, blank line, data: the header's own line end is no blank
    line, whole or streamed in pieces of any size."""
    text = f"Key:\n{PGP_KEY}\nKeep it safe."
    expected = f"Key:\n{marker('PRIVATE_KEY')}\nKeep it safe."
    assert redact(text, "redact").text == expected
    out, _ = streamed(text, list(range(cut, len(text), cut)))
    assert out == expected
