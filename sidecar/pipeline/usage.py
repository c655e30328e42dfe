"""Reads token usage, the answering model and finish reasons from every reply.

For streamed chat it asks the upstream for a final usage chunk (``stream_options.include_usage``)
so usage is never lost, and drops that chunk again when the client did not ask for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sidecar.exchange import Exchange, Reply, Usage
from sidecar.openai_api import STREAM_USAGE_ENDPOINTS
from sidecar.pipeline.base import Next
from sidecar.replay import event_json
from sidecar.stream import NO_EVENTS, StreamEnd

# The events worth parsing: a finish reason that is set, a usage object, the final Responses
# event. Whitespace-tolerant: Python servers and some gateways write '"usage": {'.
_INTERESTING = re.compile(rb'"(?:finish_reason"\s*:\s*"|usage"\s*:\s*\{)|response\.completed')


class CaptureUsage:
    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        if ex.stream and ex.path in STREAM_USAGE_ENDPOINTS and not ex.client_wants_usage:
            assert ex.body is not None
            options = ex.body.get("stream_options")
            ex.body["stream_options"] = {**(options or {}), "include_usage": True}
            ex.body_changed = True
        reply = await call_next(ex)
        if reply.status >= 400:
            return reply
        if reply.stream is not None:
            if reply.sse:
                reply.observers.append(UsageObserver(ex))
        elif (parsed := reply.json()) is not None:
            read_response(parsed, ex)
        return reply


def read_response(obj: dict[str, Any], ex: Exchange) -> None:
    """Usage, model and finish reasons of a whole response (chat, responses, embeddings, images)."""
    if isinstance(model := obj.get("model"), str):
        ex.response_model = model
    usage = obj.get("usage")
    if isinstance(usage, dict):
        ex.usage = usage_of(usage)
    data = obj.get("data")
    if obj.get("created") and isinstance(data, list) and ex.operation == "image-generation":
        ex.usage = ex.usage or Usage()
        ex.usage.images = len(data)
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict) and isinstance(reason := choice.get("finish_reason"), str):
            ex.finish_reasons.append(reason)
    # A Responses stream repeats the response in its first event, still "in_progress": only
    # the status it ends with is a finish reason.
    status = obj.get("status")
    if status in _FINAL_STATUSES and obj.get("object") == "response":
        ex.finish_reasons.append(status)


_FINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})


def usage_of(usage: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens", usage.get("input_tokens")) or 0),
        output_tokens=int(usage.get("completion_tokens", usage.get("output_tokens")) or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


class UsageObserver:
    """Reads usage from the stream's events; drops the usage chunk the client did not ask for."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.first = True

    def on_event(self, event: bytes) -> bytes | None:
        # Parse only the few events that carry what we need; the rest pass untouched.
        interesting = self.first or _INTERESTING.search(event) is not None
        self.first = False
        if interesting and (obj := event_json(event)) is not None:
            if _is_usage_only_chunk(obj) and not self.ex.client_wants_usage:
                read_response(obj, self.ex)
                return None
            read_response(obj.get("response") or obj, self.ex)
        return event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        return NO_EVENTS


def _is_usage_only_chunk(obj: dict[str, Any]) -> bool:
    return obj.get("choices") == [] and isinstance(obj.get("usage"), dict)
