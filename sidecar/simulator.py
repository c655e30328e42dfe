"""Simulated OpenAI-compatible upstream for tests, the demo and benchmarks.

It answers like api.openai.com (same JSON shapes, SSE framing, error envelopes and rate-limit
headers) so the official SDK parses it, and it can be told to misbehave: a per-request
``X-Mock-Outcome`` header, per-model scripts, or seeded random fault rates. Answer text and the
model list are precomputed and nothing heavy runs per request, so a proxy benchmarked against it
measures the proxy, not the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import math
import random
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Outcome = int | str
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OUTCOME_HEADER = "X-Mock-Outcome"
NAMED_OUTCOMES = frozenset({"quota", "tpm", "context", "timeout", "reset", "garbage"})
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4",
    "gpt-3.5-turbo",
    "text-embedding-3-small",
    "dall-e-3",
    "dall-e-2",
    "omni-moderation-latest",
)


@dataclass
class Faults:
    """Per-request fault probabilities (0..1); checked in field order, the first hit wins."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_timeout: float = 0.0
    rate_reset: float = 0.0  # streaming requests only
    retry_after_s: float = 1.0


@dataclass
class SimulatorConfig:
    """Read on every request (except seed and record_limit), so tests may change it live."""

    seed: int = 7
    latency_ms: float = 0.0
    latency_sigma: float = 0.5
    chunk_delay_ms: float = 0.0
    stream_chunks: int = 8
    hang_s: float = 300.0
    faults: Faults = field(default_factory=Faults)
    model_faults: dict[str, Faults] = field(default_factory=dict)
    context_window: int = 128_000
    unknown_models: set[str] = field(default_factory=set)
    record_limit: int = 10_000


@dataclass(slots=True)
class SeenRequest:
    """One request as the simulator received it. Header names are lower-cased."""

    t: float
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    model: str | None
    outcome: str = "200"  # what the simulator decided: "200", "429", "quota", "reset", ...
    latency_s: float = 0.0  # latency drawn for this request
    meta: dict[str, Any] = field(default_factory=dict)  # tokens, image size/quality, ...


def parse_outcome(value: int | str) -> Outcome:
    """Validate a scripted or header outcome: 200, an HTTP error status, or a named outcome."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in NAMED_OUTCOMES:
            return text
        if not text.isdigit():
            raise ValueError(f"unknown outcome {value!r}")
        value = int(text)
    if value == 200 or 400 <= value <= 599:
        return value
    raise ValueError(f"outcome status must be 200 or 400-599, got {value}")


# --- precomputed answer text -------------------------------------------------------------------

_WORDS = (
    *("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed"),
    *("do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua"),
)
_MAX_WORDS = 4096  # completion length cap; one word counts as one token


def _build_text() -> tuple[str, list[int]]:
    words = [_WORDS[i % len(_WORDS)] for i in range(_MAX_WORDS)]
    ends = [0]  # ends[k] = length of the first k words joined by spaces
    for word in words:
        ends.append(ends[-1] + len(word) + (1 if ends[-1] else 0))
    return " ".join(words), ends


_TEXT, _ENDS = _build_text()


def _text(words: int) -> str:
    return _TEXT[: _ENDS[words]]


def _split(words: int, parts: int) -> list[str]:
    """The first `words` words cut into at most `parts` non-empty pieces (spaces kept)."""
    parts = max(1, min(parts, words))
    bounds = [_ENDS[words * i // parts] for i in range(parts + 1)]
    return [_TEXT[a:b] for a, b in itertools.pairwise(bounds)]


_FINGERPRINT = "fp_simulator"
_GARBAGE = b'{"id": "chatcmpl-garbage", "object": "chat.completion", "choices": [{"mess'
_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}


_MODELS_BODY = orjson.dumps({"object": "list", "data": [_model_object(m) for m in MODELS]})
_KNOWN_MODELS = frozenset(MODELS)
# First path segments of the real OpenAI API that the simulator does not model: requests there get
# a generic pass-through answer (a proxy's forwarding can be tested); any other /v1 path is a 404,
# as on api.openai.com.
OPENAI_SEGMENTS = frozenset(
    {
        "assistants", "audio", "batches", "chat", "completions", "containers", "conversations",
        "embeddings", "evals", "files", "fine_tuning", "images", "models", "moderations",
        "organization", "realtime", "responses", "threads", "uploads", "vector_stores", "videos",
    }
)  # fmt: skip
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_POLL_S = 0.05  # how often long waits look for a vanished client


# --- token estimates (about 4 characters per token) --------------------------------------------


def _text_len(content: Any) -> int:
    """Characters in a content value: a string or a list of typed parts carrying "text"."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_len(part.get("text")) for part in content if isinstance(part, dict))
    return 0


def _messages_tokens(messages: Any) -> int:
    if isinstance(messages, str):
        return max(1, len(messages) // 4)
    if not isinstance(messages, list):
        return 1
    chars = sum(_text_len(m.get("content")) for m in messages if isinstance(m, dict))
    return max(1, chars // 4 + 4 * len(messages) + 3)  # per-message framing, like tiktoken


def _chat_tokens(body: dict[str, Any]) -> int:
    return _messages_tokens(body.get("messages"))


def _responses_tokens(body: dict[str, Any]) -> int:
    return _messages_tokens(body.get("input")) + _text_len(body.get("instructions")) // 4


MODERATION_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")
_FLAG = re.compile(r"\[flag:([a-z/-]{1,40})\]")


def _moderation_texts(raw: Any) -> list[str]:
    """A moderation input's texts: a string, a list of strings, or a list of parts (whose
    text parts are read; images count as an empty text)."""
    items = raw if isinstance(raw, list) else [raw]
    texts = []
    for item in items:
        text = item.get("text") if isinstance(item, dict) and item.get("type") == "text" else item
        texts.append(text if isinstance(text, str) else "")
    return texts


def _moderation_tokens(body: dict[str, Any]) -> int:
    return sum(max(1, len(text) // 4) for text in _moderation_texts(body.get("input")))


def _embedding_inputs(raw: Any) -> list[Any]:
    # OpenAI accepts a string, a list of strings, one token array, or a list of token arrays.
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        return [raw]
    return raw if isinstance(raw, list) else []


def _embedding_tokens(body: dict[str, Any]) -> int:
    items = _embedding_inputs(body.get("input"))
    return sum(max(1, len(i) // 4) if isinstance(i, str) else len(i) for i in items)


def _no_tokens(body: dict[str, Any]) -> int:
    return 0


def _vector(item: Any, dims: int) -> list[float]:
    # Seeded by the input so identical inputs embed identically (response caches can be tested).
    rng = random.Random(zlib.crc32(orjson.dumps(item)))
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# --- responses ---------------------------------------------------------------------------------

_RPM = (
    "Rate limit reached for {model} in organization org-sim on requests per min (RPM): "
    "Limit 500, Used 500, Requested 1. Please try again in {retry}."
)
_TPM = (
    "Request too large for {model} in organization org-sim on tokens per min (TPM): "
    "Limit 30000, Requested {tokens}. The input or output tokens must be reduced in order "
    "to run successfully."
)
_QUOTA = "You exceeded your current quota, please check your plan and billing details."
_CONTEXT = (
    "This model's maximum context length is {window} tokens. However, your messages "
    "resulted in {tokens} tokens. Please reduce the length of the messages."
)
_NO_MODEL = "The model `{model}` does not exist or you do not have access to it."
_INVALID = "invalid_request_error"
# outcome -> (status, type, code, message template), worded like OpenAI's own errors.
_ERRORS: dict[Outcome, tuple[int, str, str | None, str]] = {
    400: (400, _INVALID, None, "Invalid request."),
    401: (401, _INVALID, "invalid_api_key", "Incorrect API key provided."),
    403: (403, _INVALID, None, "You are not allowed to use this model."),
    404: (404, _INVALID, "model_not_found", _NO_MODEL),
    429: (429, "requests", "rate_limit_exceeded", _RPM),
    "tpm": (429, "tokens", "rate_limit_exceeded", _TPM),
    "quota": (429, "insufficient_quota", "insufficient_quota", _QUOTA),
    "context": (400, _INVALID, "context_length_exceeded", _CONTEXT),
    500: (500, "server_error", None, "The server had an error while processing your request."),
    503: (503, "server_error", None, "The server is overloaded or not ready yet."),
}


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _error(
    status: int,
    message: str,
    kind: str = _INVALID,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error = {"message": message, "type": kind, "param": param, "code": code}
    return _json({"error": error}, status, headers)


def _duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:g}s" if minutes else f"{secs:g}s"


def _retry_headers(seconds: float) -> dict[str, str]:
    return {
        "retry-after": str(math.ceil(seconds)),
        "retry-after-ms": str(round(seconds * 1000)),
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": _duration(seconds),
    }


def _sse(event: str | None, data: Any) -> bytes:
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _chat_events(
    base: dict[str, Any], body: dict[str, Any], pieces: list[str], usage: Any
) -> list[bytes]:
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and options.get("include_usage") is True

    def chunk(choices: list[Any], chunk_usage: Any = None) -> bytes:
        data = {**base, "object": "chat.completion.chunk", "choices": choices}
        if with_usage:  # OpenAI sends "usage": null on every chunk but the last
            data["usage"] = chunk_usage
        return _sse(None, data)

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    events = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
    events += [chunk(choice({"content": piece})) for piece in pieces]
    events.append(chunk(choice({}, "stop")))
    if with_usage:
        events.append(chunk([], usage))
    events.append(b"data: [DONE]\n\n")
    return events


def _responses_events(final: dict[str, Any], pieces: list[str]) -> list[bytes]:
    item = final["output"][0]
    part = item["content"][0]
    ref = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    open_item = {**item, "status": "in_progress", "content": []}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
        ("response.output_item.added", {"output_index": 0, "item": open_item}),
        ("response.content_part.added", {**ref, "part": {**part, "text": ""}}),
        *[("response.output_text.delta", {**ref, "delta": p, "logprobs": []}) for p in pieces],
        ("response.output_text.done", {**ref, "text": part["text"], "logprobs": []}),
        ("response.content_part.done", {**ref, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": final}),
    ]
    return [
        _sse(name, {"type": name, "sequence_number": i, **data})
        for i, (name, data) in enumerate(steps)
    ]


def _validate(
    parsed: Any, body: dict[str, Any], required: tuple[str, ...], strict: bool
) -> web.Response | None:
    if strict and not isinstance(parsed, dict):
        return _error(400, "We could not parse the JSON body of your request.")
    missing = next((name for name in required if body.get(name) is None), None)
    if missing is not None:
        message = f"Missing required parameter: '{missing}'."
        return _error(400, message, param=missing, code="missing_required_parameter")
    return None


class _ClientGone(ConnectionError):
    """The client hung up while the simulator was waiting."""


@dataclass(slots=True)
class _Call:
    """An admitted request that the endpoint handler must now answer."""

    raw: bytes
    parsed: Any
    body: dict[str, Any]
    model: str | None
    stream: bool
    reset: bool  # stream half of the answer, then abort the connection
    prompt_tokens: int
    record: SeenRequest


class Simulator:
    """In-process fake of the OpenAI API; mount `app()` on a test server or use `run_simulator`.

    Each /v1 request's outcome is, in order of precedence: the `X-Mock-Outcome` header, the next
    scripted outcome for its model, 404 for `unknown_models`, 400 when the prompt exceeds
    `context_window`, then the seeded random `Faults`. "timeout" hangs `hang_s` and then answers.
    Paths of the OpenAI API it does not model get a generic pass-through answer; paths OpenAI
    does not have get OpenAI's 404 "Invalid URL" error.
    `active` counts handlers in flight; `cancelled` counts those ended by the client going away.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.seen: collections.deque[SeenRequest] = collections.deque(
            maxlen=self.config.record_limit
        )
        self.active = 0
        self.cancelled = 0
        self._scripts: dict[str, collections.deque[Outcome]] = {}
        # Separate streams so enabling faults does not shift the latency or length sequences.
        seed = self.config.seed
        self._latency_rng = random.Random(f"{seed}:latency")
        self._fault_rng = random.Random(f"{seed}:faults")
        self._length_rng = random.Random(f"{seed}:length")
        self._ids = itertools.count(1)
        self._app: web.Application | None = None

    def script(self, model: str, outcomes: list[int | str]) -> None:
        """Queue outcomes for the next requests of `model`; they win over random faults."""
        parsed = [parse_outcome(o) for o in outcomes]
        self._scripts.setdefault(model, collections.deque()).extend(parsed)

    def app(self) -> web.Application:
        if self._app is None:
            app = web.Application()
            routes = [
                ("POST", "/v1/chat/completions", self._chat),
                ("POST", "/v1/responses", self._responses),
                ("POST", "/v1/embeddings", self._embeddings),
                ("POST", "/v1/moderations", self._moderations),
                ("POST", "/v1/images/generations", self._images),
                ("GET", "/v1/models", self._models),
                ("GET", "/v1/models/{model:.+}", self._model),
                ("POST", "/v1/echo", self._echo),
                ("*", "/v1/{tail:.*}", self._other_api),
                ("*", "/{tail:.*}", self._not_found),
            ]
            for method, path, handler in routes:
                app.router.add_route(method, path, self._tracked(handler))
            self._app = app
        return self._app

    # --- request plumbing ----------------------------------------------------------------------

    def _tracked(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            self.active += 1
            try:
                return await handler(request)
            except asyncio.CancelledError:  # server runs with handler_cancellation=True
                self.cancelled += 1
                raise
            except ConnectionError:  # client left while we waited or streamed
                self.cancelled += 1
                return web.Response(status=499)  # never delivered; keeps aiohttp quiet
            finally:
                self.active -= 1

        return run

    def _record(self, request: web.Request, t: float, body: Any, model: str | None) -> SeenRequest:
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = body if isinstance(body, dict) else None
        record = SeenRequest(t, request.method, request.path, headers, body, model)
        self.seen.append(record)
        return record

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}sim{next(self._ids):012d}"

    async def _wait(self, request: web.Request, seconds: float) -> None:
        # aiohttp cancels handlers on disconnect only with handler_cancellation=True (off on test
        # servers), so long waits also poll the socket to notice a client that gave up.
        deadline = time.monotonic() + seconds
        while True:
            if _gone(request):
                raise _ClientGone
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _POLL_S))

    async def _begin(
        self,
        request: web.Request,
        required: tuple[str, ...],
        count: Callable[[dict[str, Any]], int],
        strict: bool = True,
    ) -> _Call | web.StreamResponse:
        """Parse, record, validate, decide the outcome and wait; a response means "done"."""
        arrived = time.monotonic()
        raw = await request.read()
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = raw.decode("utf-8", "replace")
        body = parsed if isinstance(parsed, dict) else {}
        model = body.get("model") if isinstance(body.get("model"), str) else None
        record = self._record(request, arrived, parsed, model)
        problem = _validate(parsed, body, required, strict)
        if problem is not None:
            record.outcome = str(problem.status)
            return problem
        stream = strict and body.get("stream") is True
        tokens = count(body)
        try:
            outcome = self._outcome(request, model, stream, tokens)
        except ValueError as exc:
            record.outcome = "400"
            return _error(400, f"Invalid {OUTCOME_HEADER}: {exc}")
        record.outcome = str(outcome)
        call = _Call(raw, parsed, body, model, stream, outcome == "reset", tokens, record)
        done = await self._settle(request, call, outcome)
        return call if done is None else done

    def _outcome(
        self, request: web.Request, model: str | None, stream: bool, tokens: int
    ) -> Outcome:
        """Header beats script beats unknown model beats context overflow beats random faults."""
        forced = request.headers.get(OUTCOME_HEADER)
        if forced is not None:
            return parse_outcome(forced)
        queue = self._scripts.get(model) if model is not None else None
        if queue:
            return queue.popleft()
        if model in self.config.unknown_models:
            return 404
        if tokens > self.config.context_window:
            return "context"
        return self._random_fault(self._faults_for(model), stream)

    def _faults_for(self, model: str | None) -> Faults:
        if model is None:
            return self.config.faults
        return self.config.model_faults.get(model, self.config.faults)

    def _random_fault(self, faults: Faults, stream: bool) -> Outcome:
        # One draw per request against stacked bands, so each rate is exact and 1.0 always hits.
        draw = self._fault_rng.random()
        bands: tuple[tuple[float, Outcome], ...] = (
            (faults.rate_429, 429),
            (faults.rate_500, 500),
            (faults.rate_503, 503),
            (faults.rate_timeout, "timeout"),
            (faults.rate_reset if stream else 0.0, "reset"),
        )
        for rate, outcome in bands:
            if draw < rate:
                return outcome
            draw -= rate
        return 200

    def _latency_s(self) -> float:
        config = self.config
        if config.latency_ms <= 0:
            return 0.0
        median = math.log(config.latency_ms / 1000)
        return self._latency_rng.lognormvariate(median, config.latency_sigma)

    async def _settle(
        self, request: web.Request, call: _Call, outcome: Outcome
    ) -> web.StreamResponse | None:
        """Wait out latency and hangs; return the final response unless the handler answers."""
        latency_s = call.record.latency_s = self._latency_s()
        if latency_s > 0:
            await self._wait(request, latency_s)
        if outcome == "timeout":
            await self._wait(request, self.config.hang_s)
            return None
        if outcome == 200 or (outcome == "reset" and call.stream):
            return None
        if outcome == "reset":
            _abort(request)
            return web.Response()  # aiohttp finds the transport closed and drops it quietly
        if outcome == "garbage":
            return _json(_GARBAGE)
        return self._error_for(outcome, call.model, call.prompt_tokens)

    def _error_for(self, outcome: Outcome, model: str | None, tokens: int) -> web.Response:
        status = int(outcome) if isinstance(outcome, int) else 400
        generic = (
            status,
            "server_error" if status >= 500 else _INVALID,
            None,
            "Simulated HTTP {status} error.",
        )
        status, kind, code, template = _ERRORS.get(outcome, generic)
        retry_s = self._faults_for(model).retry_after_s
        window = self.config.context_window
        message = template.format(
            status=status,
            model=model or "unknown",
            retry=_duration(retry_s),
            window=window,
            tokens=max(tokens, window + 1) if outcome == "context" else max(tokens, 30_001),
        )
        param = "messages" if outcome == "context" else None
        # Quota errors are not retryable, so OpenAI sends no retry hint with them.
        headers = _retry_headers(retry_s) if status == 429 and outcome != "quota" else None
        return _error(status, message, kind, param=param, code=code, headers=headers)

    async def _stream(
        self, request: web.Request, events: list[bytes], reset: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        if reset:
            events = events[: len(events) // 2]
        delay = self.config.chunk_delay_ms / 1000
        for i, event in enumerate(events):
            if delay > 0 and i:
                await asyncio.sleep(delay)
            await response.write(event)  # aiohttp sends each write at once (TCP_NODELAY)
        if reset:
            _abort(request)
        else:
            await response.write_eof()
        return response

    def _completion_tokens(self, body: dict[str, Any], *keys: str) -> int:
        for key in keys:
            limit = _positive_int(body.get(key))
            if limit is not None:
                return min(limit, _MAX_WORDS)
        return self._length_rng.randint(20, 200)

    # --- endpoints -----------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request, ("model", "messages"), _chat_tokens)
        if not isinstance(call, _Call):
            return call
        words = self._completion_tokens(call.body, "max_completion_tokens", "max_tokens")
        call.record.meta.update(prompt_tokens=call.prompt_tokens, completion_tokens=words)
        usage = _chat_usage(call.prompt_tokens, words)
        base = {
            "id": self._new_id("chatcmpl-"),
            "created": int(time.time()),
            "model": call.model,
            "system_fingerprint": _FINGERPRINT,
        }
        if call.stream:
            pieces = _split(words, self.config.stream_chunks)
            return await self._stream(
                request, _chat_events(base, call.body, pieces, usage), call.reset
            )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": _text(words),
            "refusal": None,
            "annotations": [],
        }
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return _json({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request, ("model", "input"), _responses_tokens)
        if not isinstance(call, _Call):
            return call
        words = self._completion_tokens(call.body, "max_output_tokens")
        call.record.meta.update(prompt_tokens=call.prompt_tokens, completion_tokens=words)
        text = _text(words)
        final = self._response_object(call, text, words)
        if call.stream:
            pieces = _split(words, self.config.stream_chunks)
            return await self._stream(request, _responses_events(final, pieces), call.reset)
        return _json(final)

    def _response_object(self, call: _Call, text: str, words: int) -> dict[str, Any]:
        content = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {
            "type": "message",
            "id": self._new_id("msg_"),
            "status": "completed",
            "role": "assistant",
            "content": [content],
        }
        usage = {
            "input_tokens": call.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": words,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": call.prompt_tokens + words,
        }
        body = call.body
        return {
            "id": self._new_id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": call.model,
            "output": [item],
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "metadata": {},
        }

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request, ("model", "input"), _embedding_tokens)
        if not isinstance(call, _Call):
            return call
        dims = min(_positive_int(call.body.get("dimensions")) or 8, 4096)
        as_base64 = call.body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(_embedding_inputs(call.body.get("input"))):
            vector = _vector(item, dims)
            packed = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            embedding: Any = packed if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        call.record.meta.update(prompt_tokens=call.prompt_tokens, dimensions=dims)
        usage = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}
        return _json({"object": "list", "data": data, "model": call.model, "usage": usage})

    async def _moderations(self, request: web.Request) -> web.StreamResponse:
        """Flags an input that names a category as ``[flag:CATEGORY]`` (a deterministic hook for
        tests and demos); everything else is clean."""
        call = await self._begin(request, ("input",), _moderation_tokens)
        if not isinstance(call, _Call):
            return call
        results = []
        for text in _moderation_texts(call.body.get("input")):
            named = set(_FLAG.findall(text))
            categories = {name: name in named for name in sorted({*MODERATION_CATEGORIES, *named})}
            scores = {name: 0.97 if flagged else 0.0001 for name, flagged in categories.items()}
            results.append(
                {"flagged": bool(named), "categories": categories, "category_scores": scores}
            )
        model = call.model or "omni-moderation-latest"
        return _json({"id": self._new_id("modr-"), "model": model, "results": results})

    async def _images(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request, ("prompt",), _no_tokens)
        if not isinstance(call, _Call):
            return call
        body = call.body
        count = min(_positive_int(body.get("n")) or 1, 10)
        size = str(body.get("size") or "1024x1024")
        quality = str(body.get("quality") or "standard")
        call.record.meta.update(size=size, quality=quality, n=count)
        image_id = self._new_id("img-")
        data = []
        for i in range(count):
            image = (
                {"b64_json": _PNG_B64}
                if body.get("response_format") == "b64_json"
                else {"url": f"https://images.simulator.invalid/{image_id}-{i}.png"}
            )
            data.append({**image, "revised_prompt": body["prompt"]})
        return _json({"created": int(time.time()), "data": data})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request, (), _no_tokens, strict=False)
        return _json(_MODELS_BODY) if isinstance(call, _Call) else call

    async def _model(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/models/{id}: the model object, or OpenAI's 404 for a model it does not have."""
        call = await self._begin(request, (), _no_tokens, strict=False)
        if not isinstance(call, _Call):
            return call
        model = call.record.model = request.match_info["model"]
        if model not in _KNOWN_MODELS or model in self.config.unknown_models:
            call.record.outcome = "404"
            return self._error_for(404, model, 0)
        return _json(_model_object(model))

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request, (), _no_tokens, strict=False)
        if not isinstance(call, _Call):
            return call
        echo = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": call.record.headers,
            "body": call.parsed,
        }
        return _json(echo)

    async def _passthrough(self, request: web.Request) -> web.StreamResponse:
        call = await self._begin(request, (), _no_tokens, strict=False)
        if not isinstance(call, _Call):
            return call
        return _json({"object": "passthrough", "method": request.method, "path": request.path})

    async def _other_api(self, request: web.Request) -> web.StreamResponse:
        first = request.match_info["tail"].split("/", 1)[0]
        if first in OPENAI_SEGMENTS:
            return await self._passthrough(request)
        return await self._not_found(request)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        self._record(request, time.monotonic(), None, None)
        return _error(404, f"Invalid URL ({request.method} {request.path})")


async def run_simulator(
    host: str,
    port: int,
    config: SimulatorConfig,
    *,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Serve a simulator until cancelled (`llm-sidecar mock-upstream`).

    ``on_listening`` runs once the socket is bound, so "listening" is never said of a port that
    turns out to be taken; binding errors (OSError) propagate to the caller.
    """
    simulator = Simulator(config)
    # handler_cancellation: a client hanging up cancels its handler at once, like a real server.
    runner = web.AppRunner(simulator.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        if on_listening is not None:
            on_listening()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
