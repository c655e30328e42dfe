"""A harness that drives the ResponseCache stage directly: a scripted upstream, a runtime on
either backend, and what each request saw."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Callable
from typing import Any

import orjson

from sidecar import stream
from sidecar.backends import Backends, CacheStore
from sidecar.backends.memory import MemoryCache, MemoryCounters, MemoryJobs
from sidecar.backends.redis import RedisCache, connect
from sidecar.backends.resp import PipelinedRedis
from sidecar.backends.setup import open_usage_store
from sidecar.background import Background, Job
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.base import Next, compose
from sidecar.pipeline.body import ReadBody
from sidecar.pipeline.cache import ResponseCache
from sidecar.pipeline.identity import Identify
from sidecar.pipeline.usage import CaptureUsage
from sidecar.replay import event_json
from sidecar.runtime import Overrides, Runtime
from tests.helpers import REDIS_URL, exchange, sidecar_settings

TTL_S = 600
OPERATIONS: dict[str, Any] = {
    "chat": {"cache_ttl_s": TTL_S, "rate_limit": None, "fallbacks": []},
    "image-generation": {"rate_limit": None},
    "team": {"cache_ttl_s": TTL_S, "cache_scope": "tenant"},
    "everyone": {"cache_ttl_s": TTL_S, "cache_scope": "global"},
    "uncached": {"cache_ttl_s": 0},
    "quick": {"cache_ttl_s": TTL_S, "deadline_s": 0.05},
}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES: dict[str, Any] = {"model": "gpt-4o", "input": "hi"}
EMBEDDINGS: dict[str, Any] = {"model": "text-embedding-3-small", "input": "hi"}
IMAGES: dict[str, Any] = {"model": "dall-e-3", "prompt": "a cat"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ManualBackground(Background):
    """Work after the reply runs only when the test says so; refused past ``limit`` jobs."""

    def __init__(self, limit: int = 100) -> None:
        super().__init__(capacity=1)
        self.limit = limit
        self.jobs: list[Job] = []

    def submit(self, name: str, job: Job) -> bool:
        if len(self.jobs) >= self.limit:
            self.dropped += 1
            return False
        self.jobs.append(job)
        return True

    async def run(self) -> None:
        while self.jobs:
            await self.jobs.pop(0)()


# --- a scripted upstream ---------------------------------------------------------------------


async def events(items: list[bytes], cut_after: int | None = None) -> AsyncGenerator[bytes]:
    for i, item in enumerate(items):
        if cut_after is not None and i == cut_after:
            raise SidecarError(ErrorCode.NETWORK, "connection reset mid-stream")
        yield item


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def chat_answer(n: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": f"answer {n}", "refusal": None}
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def chat_chunks(n: int, *, finish: bool = True, usage: bool = True) -> list[bytes]:
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 1}
    base["model"] = "gpt-4o-2024-08-06"

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return sse({**base, "choices": [choice]})

    items = [chunk({"role": "assistant", "content": ""}), chunk({"content": "answer "})]
    items.append(chunk({"content": str(n)}))
    if finish:
        items.append(chunk({}, "stop"))
    if usage:
        items.append(
            sse({**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
        )
    return [*items, b"data: [DONE]\n\n"]


def response_answer(n: int, status: str = "completed") -> dict[str, Any]:
    text = {"type": "output_text", "text": f"answer {n}", "annotations": []}
    item = {"type": "message", "id": f"msg_{n}", "status": "completed", "role": "assistant"}
    return {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-4o-2024-08-06",
        "output": [{**item, "content": [text]}],
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
    }


def answer_for(ex: Exchange, n: int) -> Reply:
    """What the upstream answers to call number ``n``: every answer is told apart by ``n``."""
    if ex.path == "chat/completions":
        if ex.stream:
            return Reply(200, stream=events(chat_chunks(n)))
        return Reply(200, body=orjson.dumps(chat_answer(n)))
    if ex.path == "responses":
        final = response_answer(n)
        if ex.stream:
            done = {"type": "response.completed", "sequence_number": 1, "response": final}
            started = {"type": "response.created", "sequence_number": 0, "response": final}
            return Reply(
                200,
                stream=events([sse(started, "response.created"), sse(done, "response.completed")]),
            )
        return Reply(200, body=orjson.dumps(final))
    if ex.path == "embeddings":
        data = [{"object": "embedding", "index": 0, "embedding": [n, 0.5]}]
        usage = {"prompt_tokens": 2, "total_tokens": 2}
        body = {"object": "list", "data": data, "model": ex.model, "usage": usage}
        return Reply(200, body=orjson.dumps(body))
    image = (
        {"b64_json": f"png{n}"}
        if (ex.body or {}).get("response_format") == "b64_json"
        else {"url": f"https://images.invalid/{n}.png"}
    )
    return Reply(200, body=orjson.dumps({"created": 1, "data": [image]}))


Respond = Callable[[Exchange, int], Reply]


class Upstream:
    """The terminal stage: counts calls; the first one can be held at a gate or fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.respond: Respond = answer_for
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail_first = False

    async def __call__(self, ex: Exchange) -> Reply:
        self.calls += 1
        n = self.calls
        if n == 1:
            self.entered.set()
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_first:
                raise SidecarError(ErrorCode.MODEL_UNAVAILABLE, "the model is down")
        return self.respond(ex, n)


# --- the harness -----------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    ex: Exchange
    reply: Reply
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        parts = [part + b"\n\n" for part in self.body.split(b"\n\n") if part]
        return [obj for part in parts if (obj := event_json(part)) is not None]


@dataclasses.dataclass
class Harness:
    rt: Runtime
    cache: ResponseCache
    upstream: Upstream
    background: ManualBackground
    clock: Clock
    kind: str
    lookups: list[bool]
    prefetch: dict[str, bytes | None] | None = None

    @property
    def store(self) -> CacheStore:
        return self.rt.backends.cache

    def chain(self, *stages: Any) -> Next:
        settings = self.rt.settings
        front = [ReadBody(settings.limits.max_body_bytes), Identify(settings), *stages]
        return compose([*front, self.cache, CaptureUsage()], self.upstream)

    async def ask(
        self,
        body: dict[str, Any] | None = None,
        path: str = "chat/completions",
        *,
        user: str = "alice",
        headers: dict[str, str] | None = None,
        close_early: bool = False,
    ) -> Result:
        ex = exchange(path, body or CHAT, {"X-Sidecar-User": user, **(headers or {})})
        stages = [Prefetch(self)] if self.prefetch is not None else []
        reply = await self.chain(*stages)(ex)
        if reply.stream is None:
            await reply.aclose()
            return Result(ex, reply, reply.body)
        relayed = stream.relay(reply, ex)
        if close_early:
            first = await anext(relayed)
            await relayed.aclose()
            return Result(ex, reply, first)
        return Result(ex, reply, b"".join([event async for event in relayed]))

    async def key(
        self,
        body: dict[str, Any] | None = None,
        path: str = "chat/completions",
        *,
        user: str = "alice",
        method: str = "POST",
        headers: dict[str, str] | None = None,
        cache: ResponseCache | None = None,
        query: str = "",
    ) -> str | None:
        """The key the stage computes for a request, after the stages before it ran."""
        keys: list[str | None] = []
        stage = cache or self.cache

        async def probe(ex: Exchange) -> Reply:
            keys.append(stage.key_for(ex))
            keys.append(stage.key_for(ex))
            return Reply(204)

        settings = self.rt.settings
        chain = compose([ReadBody(settings.limits.max_body_bytes), Identify(settings)], probe)
        ex = exchange(
            path, body or CHAT, {"X-Sidecar-User": user, **(headers or {})}, method, query
        )
        await chain(ex)
        assert keys[0] == keys[1], "key_for is deterministic"
        return keys[0]


class Prefetch:
    """Stands in for the rate limiter: puts what it 'fetched' in ex.prefetched."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        key = self.harness.cache.key_for(ex)
        assert key is not None
        assert self.harness.prefetch is not None
        if key in self.harness.prefetch:
            ex.prefetched[key] = self.harness.prefetch[key]
        return await call_next(ex)


async def open_runtime(kind: str, clock: Clock, prefix: str) -> Runtime:
    settings = sidecar_settings(
        "http://127.0.0.1:9/v1", operations=OPERATIONS, backends={"redis_prefix": prefix}
    )
    cache: CacheStore
    closers = []
    if kind == "redis":
        client = connect(REDIS_URL, timeout_s=1.0)
        cache = RedisCache(client, REDIS_URL, PipelinedRedis(REDIS_URL, timeout_s=1.0))
        closers.append(client.aclose)
    else:
        cache = MemoryCache(clock=clock)
    usage = await open_usage_store("sqlite:///:memory:")
    backends = Backends(MemoryCounters(), cache, usage, MemoryJobs(), closers=closers)
    rt = await Runtime.open(settings, Overrides(backends=backends))
    await rt.background.drain(1)  # replaced by one the tests run by hand
    rt.background = ManualBackground()
    return rt
