"""ResponseCache, driven directly: keys, lookups, what is stored and when, invalidation, and an
unreachable store. Each test runs in process and on Redis."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from sidecar.backends import Health
from sidecar.backends.memory import MemoryCache
from sidecar.errors import SidecarError
from sidecar.exchange import Exchange, Reply, Usage
from sidecar.pipeline.cache import IMAGE_URL_TTL_S, ResponseCache, operation_prefix
from tests.helpers import sidecar_settings
from tests.pipeline.cache_harness import (
    CHAT,
    EMBEDDINGS,
    IMAGES,
    OPERATIONS,
    RESPONSES,
    TTL_S,
    Harness,
    Respond,
    answer_for,
    chat_answer,
    chat_chunks,
    events,
    response_answer,
)

# --- keys ------------------------------------------------------------------------------------


async def test_key_is_operation_prefix_then_scope_then_a_sha256(h: Harness) -> None:
    """Keys read {redis_prefix}cache:{operation}:{scope}:{sha256 hex}: the admin endpoint
    clears an operation by its prefix."""
    key = await h.key()
    assert key is not None
    prefix = operation_prefix(h.rt.settings, "chat")
    assert key.startswith(prefix + "u:alice:")
    digest = key.removeprefix(prefix + "u:alice:")
    assert len(digest) == 64
    assert int(digest, 16) >= 0


async def test_key_ignores_what_does_not_change_the_answer(h: Harness) -> None:
    """Key order, stream, stream_options, user, safety_identifier, metadata, store,
    service_tier, prompt-cache hints and 1.0 written as 1 leave the key alone: such requests
    share answers."""
    plain = await h.key(CHAT)
    reordered = {"messages": CHAT["messages"], "model": CHAT["model"]}
    assert await h.key(reordered) == plain
    noise = {
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "alice",
        "safety_identifier": "s-1",
        "metadata": {"run": "7"},
        "store": True,
        "service_tier": "flex",
        "prompt_cache_key": "k",
    }
    assert await h.key({**CHAT, **noise}) == plain
    assert await h.key({**CHAT, "temperature": 1}) == await h.key({**CHAT, "temperature": 1.0})


@pytest.mark.parametrize(
    ("body", "path", "headers"),
    [
        ({**CHAT, "temperature": 0.2}, "chat/completions", {}),
        ({**CHAT, "model": "gpt-4o-mini"}, "chat/completions", {}),
        ({**CHAT, "messages": [{"role": "user", "content": "hello"}]}, "chat/completions", {}),
        (
            {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]},
            "chat/completions",
            {},
        ),
        (CHAT, "chat/completions", {"X-Sidecar-Provider": "sim"}),
        ({**CHAT, "input": "hi"}, "responses", {}),
    ],
)
async def test_key_changes_with_what_changes_the_answer(
    h: Harness, body: dict[str, Any], path: str, headers: dict[str, str]
) -> None:
    """Sampling settings, model, messages, tools, the endpoint and a pinned provider all
    make a different key."""
    assert await h.key(body, path, headers=headers) != await h.key(CHAT)


async def test_the_query_string_and_a_responses_store_flag_are_part_of_the_key(
    h: Harness,
) -> None:
    """The query goes upstream too (?api-version=...), and a Responses answer given with
    store: false has an id the provider never kept, so it must not answer a request that
    stores (store is true when unset)."""
    plain = await h.key(CHAT)
    assert await h.key(CHAT, query="api-version=2024-01-01") != plain
    assert await h.key(CHAT, query="api-version=2024-01-01") != await h.key(
        CHAT, query="api-version=2025-01-01"
    )
    stored = await h.key(RESPONSES, "responses")
    assert await h.key({**RESPONSES, "store": True}, "responses") == stored
    assert await h.key({**RESPONSES, "store": False}, "responses") != stored


@pytest.mark.parametrize(
    ("body", "path", "method", "headers"),
    [
        (CHAT, "chat/completions", "POST", {"X-Sidecar-Operation": "uncached"}),  # ttl 0
        (CHAT, "chat/completions", "GET", {}),
        (CHAT, "completions", "POST", {}),  # legacy completions: no replay for it
        ({**EMBEDDINGS, "stream": True}, "embeddings", "POST", {}),
        ({**RESPONSES, "background": True}, "responses", "POST", {}),
        ({**RESPONSES, "conversation": "conv_1"}, "responses", "POST", {}),
        (CHAT, "chat/completions", "POST", {"Cache-Control": "no-store"}),
        (CHAT, "chat/completions", "POST", {"Cache-Control": "private, No-Store"}),
    ],
)
async def test_requests_that_cannot_be_cached_have_no_key(
    h: Harness, body: dict[str, Any], path: str, method: str, headers: dict[str, str]
) -> None:
    """No key (BYPASS) for: operations with cache_ttl_s 0, other methods and endpoints,
    streams that cannot be replayed, Responses calls depending on server state, no-store."""
    assert await h.key(body, path, method=method, headers=headers) is None


async def test_scopes_partition_keys_by_user_tenant_or_nobody(h: Harness) -> None:
    """user scope: one key per user. tenant scope: one per X-Sidecar-Tenant (the user when
    absent; a tenant never shares with a user of the same name). global: one for all."""
    assert await h.key(user="alice") != await h.key(user="bob")
    team = {"X-Sidecar-Operation": "team"}
    acme = {**team, "X-Sidecar-Tenant": "acme"}
    assert await h.key(user="alice", headers=acme) == await h.key(user="bob", headers=acme)
    other = {**team, "X-Sidecar-Tenant": "globex"}
    assert await h.key(user="alice", headers=acme) != await h.key(user="alice", headers=other)
    assert await h.key(user="alice", headers=team) != await h.key(user="bob", headers=team)
    named_alice = {**team, "X-Sidecar-Tenant": "alice"}
    assert await h.key(user="alice", headers=named_alice) != await h.key(user="alice", headers=team)
    everyone = {"X-Sidecar-Operation": "everyone"}
    shared = await h.key(user="alice", headers=everyone)
    assert shared == await h.key(user="bob", headers=everyone)
    assert shared is not None
    assert ":*:" in shared


async def test_client_keys_partition_answers_when_a_provider_checks_them(h: Harness) -> None:
    """When a provider takes the client's own Authorization, only callers presenting the
    same key share answers (the provider, not the cache, decides who may ask)."""
    a, b = {"Authorization": "Bearer sk-a"}, {"Authorization": "Bearer sk-b"}
    assert await h.key(headers=a) == await h.key(headers=b)
    forwarding = sidecar_settings(
        "http://127.0.0.1:9/v1",
        providers={"own": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None,
                           "forward_client_key": True}},
        operations=OPERATIONS,
    )  # fmt: skip
    stage = ResponseCache(dataclasses.replace(h.rt, settings=forwarding))
    assert await h.key(headers=a, cache=stage) != await h.key(headers=b, cache=stage)


# --- lookups and stores ----------------------------------------------------------------------


async def test_a_miss_is_stored_after_the_reply_and_the_next_request_hits(h: Harness) -> None:
    """MISS calls the upstream; its answer is stored after the reply; the same request then
    gets a HIT with the same body, model, usage and finish reasons, without the upstream."""
    first = await h.ask()
    assert first.ex.cache == "MISS"
    key = await h.key()
    assert key is not None
    assert await h.store.get(key) is None  # not on the reply's path
    await h.background.run()
    assert await h.store.get(key) is not None
    second = await h.ask()
    assert second.ex.cache == "HIT"
    assert second.body == first.body
    assert h.upstream.calls == 1
    assert second.ex.response_model == "gpt-4o-2024-08-06"
    assert second.ex.usage == Usage(input_tokens=7, output_tokens=3)
    assert second.ex.finish_reasons == ["stop"]
    assert second.reply.headers["Content-Type"] == "application/json"
    assert h.lookups == [False, True]


async def test_a_full_background_queue_skips_the_store(h: Harness) -> None:
    """When work after the reply cannot be queued the answer is simply not stored."""
    h.background.limit = 0
    assert (await h.ask()).ex.cache == "MISS"
    assert (await h.ask()).ex.cache == "MISS"
    assert h.upstream.calls == 2
    assert h.background.dropped == 2


async def test_uncacheable_requests_bypass_without_a_lookup(h: Harness) -> None:
    """No key: X-Sidecar-Cache stays BYPASS, nothing is looked up or stored."""
    for _ in range(2):
        result = await h.ask(headers={"X-Sidecar-Operation": "uncached"})
        assert result.ex.cache == "BYPASS"
    assert h.background.jobs == []
    assert (h.upstream.calls, h.lookups) == (2, [])


async def test_the_rate_limiters_prefetched_value_replaces_the_lookup(h: Harness) -> None:
    """When the rate limiter fetched the key in its round trip, its value decides: a fetched
    miss is a MISS even if the store has the entry now, a fetched entry is a HIT."""
    await h.ask()
    await h.background.run()
    key = await h.key()
    assert key is not None
    stored = await h.store.get(key)
    h.prefetch = {key: None}
    assert (await h.ask()).ex.cache == "MISS"
    h.prefetch = {key: stored}
    await h.store.clear(operation_prefix(h.rt.settings, "chat"))
    assert (await h.ask()).ex.cache == "HIT"
    assert h.upstream.calls == 2


async def test_no_cache_skips_the_lookup_but_stores_the_fresh_answer(h: Harness) -> None:
    """Cache-Control: no-cache calls the upstream (BYPASS) and replaces the stored answer."""
    await h.ask()
    await h.background.run()
    fresh = await h.ask(headers={"Cache-Control": "no-cache"})
    assert fresh.ex.cache == "BYPASS"
    assert fresh.json["choices"][0]["message"]["content"] == "answer 2"
    await h.background.run()
    again = await h.ask()
    assert again.ex.cache == "HIT"
    assert again.json["choices"][0]["message"]["content"] == "answer 2"
    assert h.upstream.calls == 2


async def test_no_store_neither_looks_up_nor_stores(h: Harness) -> None:
    """Cache-Control: no-store bypasses the cache both ways."""
    await h.ask()
    await h.background.run()
    result = await h.ask(headers={"Cache-Control": "no-store"})
    assert result.ex.cache == "BYPASS"
    assert result.json["choices"][0]["message"]["content"] == "answer 2"
    assert h.background.jobs == []
    assert (await h.ask()).json["choices"][0]["message"]["content"] == "answer 1"


async def test_entries_live_for_the_operations_ttl(
    h: Harness, redis_client: aioredis.Redis
) -> None:
    """An entry expires cache_ttl_s after it was stored (in process on the injected clock,
    in Redis by the key's own expiry)."""
    await h.ask()
    await h.background.run()
    key = await h.key()
    assert key is not None
    if h.kind == "redis":
        assert 0 < await redis_client.pttl(key) <= TTL_S * 1000
        return
    h.clock.now += TTL_S - 1
    assert (await h.ask()).ex.cache == "HIT"
    h.clock.now += 2
    assert (await h.ask()).ex.cache == "MISS"
    assert h.upstream.calls == 2


async def test_image_urls_are_kept_no_longer_than_they_live(
    h: Harness, redis_client: aioredis.Redis
) -> None:
    """Image answers given as URLs (which expire at the provider) live IMAGE_URL_TTL_S at most;
    base64 images live the operation's whole ttl."""
    path = "images/generations"
    await h.ask(IMAGES, path)
    await h.ask({**IMAGES, "response_format": "b64_json"}, path)
    await h.background.run()
    url_key = await h.key(IMAGES, path)
    b64_key = await h.key({**IMAGES, "response_format": "b64_json"}, path)
    assert url_key is not None
    assert b64_key is not None
    if h.kind == "redis":
        assert 0 < await redis_client.pttl(url_key) <= IMAGE_URL_TTL_S * 1000
        assert await redis_client.pttl(b64_key) > IMAGE_URL_TTL_S * 1000
        return
    h.clock.now += IMAGE_URL_TTL_S + 1
    assert (await h.ask(IMAGES, path)).ex.cache == "MISS"
    b64 = await h.ask({**IMAGES, "response_format": "b64_json"}, path)
    assert b64.ex.cache == "HIT"
    assert b64.ex.usage is not None
    assert b64.ex.usage.images == 1


async def test_embeddings_hit(h: Harness) -> None:
    """Embeddings are stored and answered again with their usage."""
    first = await h.ask(EMBEDDINGS, "embeddings")
    await h.background.run()
    second = await h.ask(EMBEDDINGS, "embeddings")
    assert (first.ex.cache, second.ex.cache) == ("MISS", "HIT")
    assert second.body == first.body
    assert second.ex.usage == Usage(input_tokens=2)


async def test_corrupt_entries_are_misses(h: Harness) -> None:
    """Bytes that are not an entry of this version are a miss, never an error."""
    key = await h.key()
    assert key is not None
    await h.store.set(key, b"not an entry", ttl_s=60)
    assert (await h.ask()).ex.cache == "MISS"
    await h.background.run()
    await h.store.set(key, b'{"v": 99}\n{}', ttl_s=60)
    assert (await h.ask()).ex.cache == "MISS"


# --- what is never stored --------------------------------------------------------------------


async def test_errors_are_not_stored(h: Harness) -> None:
    """A failed call raises through the cache and leaves nothing behind."""
    h.upstream.fail_first = True
    with pytest.raises(SidecarError):
        await h.ask()
    assert h.background.jobs == []
    assert (await h.ask()).ex.cache == "MISS"
    assert h.upstream.calls == 2


async def test_non_2xx_replies_are_not_stored(h: Harness) -> None:
    """A reply with a status other than 2xx is passed on and never stored, whatever its body."""
    h.upstream.respond = lambda ex, n: Reply(503, body=orjson.dumps(chat_answer(n)))
    assert (await h.ask()).reply.status == 503
    assert h.background.jobs == []


async def test_fallback_answers_are_not_stored(h: Harness) -> None:
    """An answer from a fallback model is not kept: the next request may get the model it
    asked for."""

    def degraded(ex: Exchange, n: int) -> Reply:
        ex.fallback = "gpt-4o->gpt-4"
        return answer_for(ex, n)

    h.upstream.respond = degraded
    assert (await h.ask()).ex.cache == "MISS"
    assert h.background.jobs == []


async def test_cut_streams_and_left_streams_are_not_stored(h: Harness) -> None:
    """Only a stream that ended COMPLETED is stored: not one the upstream cut, nor one the
    client left."""
    streaming = {**CHAT, "stream": True}
    h.upstream.respond = lambda ex, n: Reply(200, stream=events(chat_chunks(n), cut_after=2))
    cut = await h.ask(streaming)
    assert b"connection reset" in cut.body
    left = await h.ask(streaming, close_early=True)
    assert left.body.startswith(b"data: ")
    assert h.background.jobs == []
    assert h.upstream.calls == 2
    h.upstream.respond = lambda ex, n: Reply(200, stream=events(chat_chunks(n), cut_after=5))
    complete_but_cut = await h.ask(streaming)  # every chunk but [DONE], then the failure
    assert b'"finish_reason":"stop"' in complete_but_cut.body
    assert h.background.jobs == []


def annotated(n: int) -> dict[str, Any]:
    """A chat answer citing a source: a stream replay would drop its annotations."""
    answer = chat_answer(n)
    citation = {"type": "url_citation", "url_citation": {"url": "https://example.org"}}
    answer["choices"][0]["message"]["annotations"] = [citation]
    return answer


def with_audio(chunks: list[bytes]) -> list[bytes]:
    """A chat stream whose first delta also carries audio, which no stored answer holds."""
    first = orjson.loads(chunks[0].removeprefix(b"data: "))
    first["choices"][0]["delta"]["audio"] = {"id": "audio_1", "data": "UklGRg=="}
    return [b"data: " + orjson.dumps(first) + b"\n\n", *chunks[1:]]


@pytest.mark.parametrize(
    ("path", "body", "respond"),
    [
        (
            "chat/completions",
            {**CHAT, "stream": True},
            lambda ex, n: Reply(200, stream=events(chat_chunks(n, finish=False))),
        ),
        (
            "responses",
            RESPONSES,
            lambda ex, n: Reply(200, body=orjson.dumps(response_answer(n, "incomplete"))),
        ),
        (
            "chat/completions",
            CHAT,
            lambda ex, n: Reply(200, body=orjson.dumps({**chat_answer(n), "choices": []})),
        ),
        ("chat/completions", CHAT, lambda ex, n: Reply(200, body=orjson.dumps(annotated(n)))),
        (
            "chat/completions",
            {**CHAT, "stream": True},
            lambda ex, n: Reply(200, stream=events(with_audio(chat_chunks(n)))),
        ),
    ],
)
async def test_incomplete_answers_are_not_stored(
    h: Harness, path: str, body: dict[str, Any], respond: Respond
) -> None:
    """A chat stream with an unfinished choice, a Responses answer not "completed", a chat
    answer without choices, answers a hit could not give back whole (annotations, audio in a
    stream): none is stored."""
    h.upstream.respond = respond
    await h.ask(body, path)
    assert h.background.jobs == []


# --- invalidation ----------------------------------------------------------------------------


async def test_clear_removes_every_entry_of_one_operation_and_counts_them(h: Harness) -> None:
    """clear(operation) removes that operation's entries (every scope) and says how many;
    other operations keep theirs."""
    await h.ask(user="alice")
    await h.ask(user="bob")
    await h.ask(EMBEDDINGS, "embeddings")
    await h.background.run()
    assert await h.cache.clear("chat") == 2
    assert (await h.ask(user="alice")).ex.cache == "MISS"
    assert (await h.ask(EMBEDDINGS, "embeddings")).ex.cache == "HIT"
    assert await h.cache.clear("chat") == 0


async def test_an_answer_in_flight_during_a_clear_is_not_stored(h: Harness) -> None:
    """An answer that was being fetched or stored when its operation was cleared is not
    stored afterwards."""
    await h.ask()
    assert len(h.background.jobs) == 1
    await h.cache.clear("chat")
    await h.background.run()
    key = await h.key()
    assert key is not None
    assert await h.store.get(key) is None
    assert (await h.ask()).ex.cache == "MISS"


# --- an unreachable store --------------------------------------------------------------------


class DeadStore:
    """A cache store whose every command fails like an unreachable Redis."""

    def __init__(self) -> None:
        self.gets = 0
        self.sets = 0
        self.down = True
        self.inner = MemoryCache()

    async def get(self, key: str) -> bytes | None:
        self.gets += 1
        if self.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        return await self.inner.get(key)

    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None:
        self.sets += 1
        if self.down:
            raise TimeoutError
        await self.inner.set(key, value, ttl_s=ttl_s)

    async def clear(self, prefix: str) -> int:
        return await self.inner.clear(prefix)

    async def health(self) -> Health:
        return Health("unhealthy", "down")

    async def close(self) -> None:
        pass


async def test_an_unreachable_store_is_bypassed_with_one_warning_per_outage(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing lookup answers from the upstream as BYPASS; for the cooldown the store is not
    tried at all; after it, it is tried again; one warning for the whole outage."""
    dead = DeadStore()
    h.rt.backends.cache = dead
    h.cache = ResponseCache(h.rt, clock=h.clock)
    caplog.set_level(logging.INFO, logger="sidecar.pipeline.cache")
    first = await h.ask()
    assert (first.ex.cache, first.reply.status) == ("BYPASS", 200)
    assert (await h.ask()).ex.cache == "BYPASS"
    assert dead.gets == 1  # the second request did not try the dead store
    h.clock.now += h.rt.settings.backends.redis_cooldown_s + 1
    assert (await h.ask()).ex.cache == "BYPASS"
    assert dead.gets == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "ConnectionError" in warnings[0].getMessage()
    h.clock.now += h.rt.settings.backends.redis_cooldown_s + 1
    dead.down = False
    assert (await h.ask()).ex.cache == "MISS"
    assert "answers again" in caplog.text


async def test_a_failing_store_write_starts_an_outage(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A write that fails after the reply is logged once and bypasses the store for the
    cooldown; the reply was already sent."""
    dead = DeadStore()
    dead.down = False
    h.rt.backends.cache = dead
    h.cache = ResponseCache(h.rt, clock=h.clock)
    assert (await h.ask()).ex.cache == "MISS"
    dead.down = True
    await h.background.run()
    assert dead.sets == 1
    assert (await h.ask()).ex.cache == "BYPASS"
    assert dead.gets == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
