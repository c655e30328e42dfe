"""Stored answers and SSE streams, both ways (the response cache stores one, replays either).

A cached answer is kept once, as the JSON body a non-streaming request gets, and replayed in
whichever mode the next identical request asks for::

    streamed chat chunks           --ChatAssembler-->      chat.completion JSON
    the response.completed event   --its "response"-->     response JSON (Responses API)
    chat.completion JSON           --chat_events-->        chat.completion.chunk events, [DONE]
    response JSON                  --responses_events-->   response.created ... response.completed

The events are shaped as the OpenAI API sends them, so the official SDKs parse them, including
the Responses stream helper, which checks that every delta belongs to an item it was told
about. Each text part arrives as one delta: a replay has nothing to wait for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sidecar.exchange import Usage

# Top-level fields a chunk shares with the completion it streams.
_SHARED = ("id", "created", "model", "system_fingerprint", "service_tier")
DONE = b"data: [DONE]\n\n"


def event_json(event: bytes) -> dict[str, Any] | None:
    """The JSON object of an SSE event's data line; None for [DONE], comments, non-objects."""
    for line in event.splitlines():
        if line.startswith(b"data:") and (payload := line[5:].strip()) != b"[DONE]":
            try:
                parsed = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return None
            return parsed if isinstance(parsed, dict) else None
    return None


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


# --- streamed chat -> chat.completion -------------------------------------------------------


@dataclass(slots=True)
class _Choice:
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: list[Any] | None = None
    finish_reason: str | None = None


_REBUILT = frozenset({"role", "content", "refusal", "tool_calls"})  # what a delta may carry


class ChatAssembler:
    """Builds the non-streaming ``chat.completion`` a streamed chat answer is equivalent to."""

    def __init__(self) -> None:
        self.shared: dict[str, Any] = {}
        self.choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] | None = None
        # A delta carrying more than text, refusal and tool calls (audio, the legacy
        # function_call, annotations): the whole answer cannot be rebuilt without loss.
        self.lossy = False

    def add(self, chunk: dict[str, Any]) -> None:
        for name in _SHARED:
            if (value := chunk.get(name)) is not None:
                self.shared.setdefault(name, value)
        if isinstance(usage := chunk.get("usage"), dict):
            self.usage = usage
        for raw in chunk.get("choices") or ():
            if isinstance(raw, dict) and isinstance(index := raw.get("index", 0), int):
                self._add_choice(self.choices.setdefault(index, _Choice()), raw)

    def _add_choice(self, choice: _Choice, raw: dict[str, Any]) -> None:
        delta = raw.get("delta")
        if isinstance(delta, dict):
            if any(value for key, value in delta.items() if key not in _REBUILT):
                self.lossy = True
            if isinstance(role := delta.get("role"), str):
                choice.role = role
            if isinstance(text := delta.get("content"), str):
                choice.content.append(text)
            if isinstance(text := delta.get("refusal"), str):
                choice.refusal.append(text)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(position := call.get("index"), int):
                    _add_tool_call(choice.tool_calls.setdefault(position, {}), call)
        logprobs = raw.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(tokens := logprobs.get("content"), list):
            choice.logprobs = (choice.logprobs or []) + tokens
        if isinstance(reason := raw.get("finish_reason"), str):
            choice.finish_reason = reason

    def completion(self, usage: Usage | None) -> dict[str, Any] | None:
        """The whole answer, or None unless every choice finished and nothing was lost (see
        ``lossy``). ``usage`` stands in for the usage chunk when an earlier observer dropped it
        (the client did not ask for it)."""
        if self.lossy or not self.choices:
            return None
        if any(c.finish_reason is None for c in self.choices.values()):
            return None
        choices = [_message_choice(index, self.choices[index]) for index in sorted(self.choices)]
        answer: dict[str, Any] = {**self.shared, "object": "chat.completion", "choices": choices}
        answer["usage"] = self.usage or (_chat_usage(usage) if usage is not None else None)
        return answer


def _add_tool_call(call: dict[str, Any], delta: dict[str, Any]) -> None:
    for field_name in ("id", "type"):
        if isinstance(value := delta.get(field_name), str):
            call.setdefault(field_name, value)
    function = delta.get("function")
    if isinstance(function, dict):
        target = call.setdefault("function", {"name": "", "arguments": ""})
        if isinstance(function_name := function.get("name"), str) and not target["name"]:
            target["name"] = function_name
        if isinstance(arguments := function.get("arguments"), str):
            target["arguments"] += arguments


def _message_choice(index: int, choice: _Choice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": choice.role,
        "content": "".join(choice.content) if choice.content else None,
        "refusal": "".join(choice.refusal) if choice.refusal else None,
    }
    if choice.tool_calls:
        message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
    logprobs = None if choice.logprobs is None else {"content": choice.logprobs}
    return {
        "index": index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": choice.finish_reason,
    }


def _chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


# --- chat.completion -> streamed chat -------------------------------------------------------


def chat_events(answer: dict[str, Any], *, include_usage: bool) -> list[bytes]:
    """The chunks that stream ``answer``: per choice a role delta, its content, refusal and
    tool calls, a finish chunk; the usage chunk only when the client asked; then [DONE]."""
    base = {name: answer[name] for name in _SHARED if name in answer}
    base["object"] = "chat.completion.chunk"
    if include_usage:  # as OpenAI does: "usage": null on every chunk but the last
        base["usage"] = None
    events = [
        _sse({**base, "choices": [choice]})
        for raw in answer.get("choices") or ()
        if isinstance(raw, dict)
        for choice in _choice_deltas(raw)
    ]
    if include_usage and isinstance(usage := answer.get("usage"), dict):
        events.append(_sse({**base, "choices": [], "usage": usage}))
    events.append(DONE)
    return events


def _choice_deltas(choice: dict[str, Any]) -> list[dict[str, Any]]:
    index = choice.get("index", 0)
    message = choice.get("message") or {}
    content = message.get("content")
    opening = {"role": message.get("role") or "assistant"}
    deltas: list[tuple[dict[str, Any], Any]] = [
        ({**opening, "content": "" if isinstance(content, str) else None}, None)
    ]
    if isinstance(content, str) and content:
        deltas.append(({"content": content}, choice.get("logprobs")))
    if isinstance(refusal := message.get("refusal"), str) and refusal:
        deltas.append(({"refusal": refusal}, None))
    for position, call in enumerate(message.get("tool_calls") or ()):
        deltas.append(({"tool_calls": [{"index": position, **call}]}, None))
    if isinstance(function_call := message.get("function_call"), dict):
        deltas.append(({"function_call": function_call}, None))
    chunks = [
        {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}
        for delta, logprobs in deltas
    ]
    chunks.append(
        {
            "index": index,
            "delta": {},
            "logprobs": None,
            "finish_reason": choice.get("finish_reason"),
        }
    )
    return chunks


# --- response -> streamed Responses API -----------------------------------------------------


def responses_events(response: dict[str, Any]) -> list[bytes]:
    """The Responses API events that stream ``response``: created and in progress (nothing
    output yet), each output item added, its content streamed, done; then completed."""
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
    ]
    for position, item in enumerate(response.get("output") or ()):
        if isinstance(item, dict):
            steps += _item_steps(position, item)
    steps.append(("response.completed", {"response": response}))
    return [
        _sse({"type": name, "sequence_number": number, **data}, name)
        for number, (name, data) in enumerate(steps)
    ]


def _item_steps(position: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind = item.get("type")
    opening = {**item, "status": "in_progress"}
    middle: list[tuple[str, dict[str, Any]]] = []
    if kind == "message":
        opening["content"] = []
        for part_index, part in enumerate(item.get("content") or ()):
            ref = {"item_id": item.get("id"), "output_index": position, "content_index": part_index}
            if isinstance(part, dict):
                middle += _part_steps(ref, part)
    elif kind == "function_call":
        opening["arguments"] = ""
        ref = {"item_id": item.get("id"), "output_index": position}
        arguments = item.get("arguments") or ""
        middle += [
            ("response.function_call_arguments.delta", {**ref, "delta": arguments}),
            ("response.function_call_arguments.done", {**ref, "arguments": arguments}),
        ]
    return [
        ("response.output_item.added", {"output_index": position, "item": opening}),
        *middle,
        ("response.output_item.done", {"output_index": position, "item": item}),
    ]


def _part_steps(ref: dict[str, Any], part: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind = part.get("type")
    text_field = {"output_text": "text", "refusal": "refusal"}.get(str(kind))
    if text_field is None:  # a part with no text to stream arrives whole
        empty = part
        middle: list[tuple[str, dict[str, Any]]] = []
    else:
        text = part.get(text_field) or ""
        empty = {**part, text_field: ""}
        if kind == "output_text":
            empty["annotations"] = []
            logprobs: dict[str, list[Any]] = {"logprobs": []}
            middle = [
                ("response.output_text.delta", {**ref, "delta": text, **logprobs}),
                ("response.output_text.done", {**ref, "text": text, **logprobs}),
            ]
        else:
            middle = [
                ("response.refusal.delta", {**ref, "delta": text}),
                ("response.refusal.done", {**ref, "refusal": text}),
            ]
    return [
        ("response.content_part.added", {**ref, "part": empty}),
        *middle,
        ("response.content_part.done", {**ref, "part": part}),
    ]
