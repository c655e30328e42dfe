"""The response cache through the real server: the openai SDK in front, the simulator behind,
the cache in process or in Redis."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from sidecar.backends import Backends
from sidecar.backends.memory import MemoryCache, MemoryCounters, MemoryJobs
from sidecar.backends.setup import open_usage_store
from sidecar.runtime import Overrides
from sidecar.server import RUNTIME, create_app
from sidecar.simulator import Simulator
from tests.helpers import (
    MESSAGES,
    REDIS_URL,
    MakeSidecar,
    ServerFactory,
    Sleeps,
    sdk,
    sidecar_settings,
)

TTL_S = 600
CACHED: dict[str, Any] = {
    "chat": {"cache_ttl_s": TTL_S, "rate_limit": None, "fallbacks": []},
    "image-generation": {"rate_limit": None},
    "team": {"cache_ttl_s": TTL_S, "cache_scope": "tenant"},
    "everyone": {"cache_ttl_s": TTL_S, "cache_scope": "global"},
    "uncached": {"cache_ttl_s": 0},
}


def model_calls(sim: Simulator, path: str = "/v1/chat/completions") -> int:
    return len([seen for seen in sim.seen if seen.path == path])


async def settled(server: TestServer) -> None:
    """Let the work after the replies (cache stores) finish."""
    rt = server.app[RUNTIME]
    await rt.background.drain(5)
    rt.background.start()


async def chat(
    server: TestServer, *, user: str = "alice", headers: dict[str, str] | None = None, **kw: Any
) -> tuple[str, str]:
    """(X-Sidecar-Cache, the answer's text) of a non-streaming chat call."""
    async with sdk(server) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=MESSAGES,
            extra_headers={"X-Sidecar-User": user, **(headers or {})},
            **kw,
        )
    completion = raw.parse()
    return raw.headers["X-Sidecar-Cache"], completion.choices[0].message.content or ""


async def chat_stream(
    server: TestServer, *, include_usage: bool = False, headers: dict[str, str] | None = None
) -> tuple[str, str, list[Any]]:
    """(X-Sidecar-Cache, the streamed text, the usage of each chunk) of a streamed chat call."""
    options: Any = {"include_usage": True} if include_usage else openai.omit
    async with sdk(server) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options=options,
            extra_headers={"X-Sidecar-User": "alice", **(headers or {})},
        )
        chunks = [chunk async for chunk in raw.parse()]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return raw.headers["X-Sidecar-Cache"], text, [chunk.usage for chunk in chunks]


@pytest.fixture
async def cached(
    upstream: TestServer, make_sidecar: MakeSidecar, shared_state: dict[str, Any]
) -> TestServer:
    """A sidecar caching chat for 10 minutes, in process or in Redis."""
    return await make_sidecar(str(upstream.make_url("/v1")), operations=CACHED, **shared_state)


async def test_a_repeated_request_hits_without_reaching_the_upstream(
    cached: TestServer, sim: Simulator
) -> None:
    """MISS, then HIT with the same answer and X-Sidecar-Model; the upstream saw one call."""
    first = await chat(cached)
    await settled(cached)
    second = await chat(cached)
    assert (first[0], second[0]) == ("MISS", "HIT")
    assert second[1] == first[1]
    assert model_calls(sim) == 1
    async with aiohttp.ClientSession() as http:
        body = {"model": "gpt-4o", "messages": MESSAGES}
        headers = {"X-Sidecar-User": "alice"}
        async with http.post(
            cached.make_url("/v1/chat/completions"), json=body, headers=headers
        ) as r:
            assert r.headers["X-Sidecar-Cache"] == "HIT"
            assert r.headers["X-Sidecar-Model"] == "gpt-4o"
            assert r.headers["Content-Type"].startswith("application/json")


async def test_a_rate_limited_operations_lookup_rides_the_limiters_round_trip(
    key_prefix: str,
    upstream: TestServer,
    make_sidecar: MakeSidecar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Redis, a rate-limited operation's cache entry is fetched with the limit check:
    the cache store is never asked separately, and the answer still hits."""
    limited = {"chat": {**CACHED["chat"], "rate_limit": {"requests": 10, "per_s": 60}}}
    shared = {"redis_url": REDIS_URL, "backends": {"redis_prefix": key_prefix}}
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=limited, **shared)
    store = sidecar.app[RUNTIME].backends.cache
    asked: list[str] = []

    async def get(key: str) -> bytes | None:
        asked.append(key)
        return None

    monkeypatch.setattr(store, "get", get)
    async with sdk(sidecar) as client:
        first = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES
        )
        await settled(sidecar)
        second = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES
        )
    assert (first.headers["X-Sidecar-Cache"], second.headers["X-Sidecar-Cache"]) == ("MISS", "HIT")
    assert second.headers["X-RateLimit-Remaining"] == "8"
    assert asked == []


async def test_uncached_operations_and_cache_control_bypass(
    cached: TestServer, sim: Simulator
) -> None:
    """BYPASS for an operation with cache_ttl_s 0, and for no-store; no-cache calls the
    upstream (BYPASS) and stores what it got."""
    uncached = {"X-Sidecar-Operation": "uncached"}
    assert (await chat(cached, headers=uncached))[0] == "BYPASS"
    assert (await chat(cached, headers=uncached))[0] == "BYPASS"
    assert model_calls(sim) == 2
    await chat(cached)
    await settled(cached)
    assert (await chat(cached, headers={"Cache-Control": "no-store"}))[0] == "BYPASS"
    status, fresh = await chat(cached, headers={"Cache-Control": "no-cache"})
    assert status == "BYPASS"
    assert model_calls(sim) == 5
    await settled(cached)
    assert await chat(cached) == ("HIT", fresh)


async def test_chat_streams_and_non_streams_share_entries_through_the_sdk(
    cached: TestServer, sim: Simulator
) -> None:
    """A streamed answer serves a later non-stream request and is replayed as a stream the
    SDK parses; the usage chunk appears only when the client asked for it."""
    status, streamed, usages = await chat_stream(cached)
    assert status == "MISS"
    assert usages
    assert all(usage is None for usage in usages)
    await settled(cached)
    assert await chat(cached) == ("HIT", streamed)
    status, replayed, usages = await chat_stream(cached)
    assert (status, replayed) == ("HIT", streamed)
    assert all(usage is None for usage in usages)
    status, replayed, usages = await chat_stream(cached, include_usage=True)
    assert (status, replayed) == ("HIT", streamed)
    assert usages[-1] is not None
    assert usages[-1].completion_tokens > 0
    assert all(usage is None for usage in usages[:-1])
    assert model_calls(sim) == 1


async def test_responses_streams_and_non_streams_share_entries_through_the_sdk(
    cached: TestServer, sim: Simulator
) -> None:
    """A Responses answer stored from a stream serves a non-stream request, and replays to
    both SDK stream interfaces (raw events and the accumulating helper)."""
    async with sdk(cached) as client:
        raw = await client.responses.with_raw_response.create(
            model="gpt-4o", input="hi", stream=True
        )
        events = [event async for event in raw.parse()]
        assert raw.headers["X-Sidecar-Cache"] == "MISS"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        await settled(cached)
        whole = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
        assert whole.headers["X-Sidecar-Cache"] == "HIT"
        assert whole.parse().output_text == text
        replay = await client.responses.create(model="gpt-4o", input="hi", stream=True)
        types = [event.type async for event in replay]
        assert types[0] == "response.created"
        assert types[-1] == "response.completed"
        async with client.responses.stream(model="gpt-4o", input="hi") as helper:
            final = await helper.get_final_response()
        assert final.output_text == text
    assert model_calls(sim, "/v1/responses") == 1


async def test_embeddings_and_images_are_answered_from_the_cache(
    cached: TestServer, sim: Simulator
) -> None:
    """Embeddings (a day by default) and image generations are stored and answered again."""
    async with sdk(cached) as client:
        first = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="hello"
        )
        image = await client.images.with_raw_response.generate(
            model="dall-e-3", prompt="a cat", response_format="b64_json"
        )
        await settled(cached)
        second = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="hello"
        )
        again = await client.images.with_raw_response.generate(
            model="dall-e-3", prompt="a cat", response_format="b64_json"
        )
    assert (first.headers["X-Sidecar-Cache"], second.headers["X-Sidecar-Cache"]) == ("MISS", "HIT")
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    assert (image.headers["X-Sidecar-Cache"], again.headers["X-Sidecar-Cache"]) == ("MISS", "HIT")
    assert again.parse().data == image.parse().data
    assert model_calls(sim, "/v1/embeddings") == 1
    assert model_calls(sim, "/v1/images/generations") == 1


async def test_twenty_concurrent_identical_requests_make_one_upstream_call(
    cached: TestServer, sim: Simulator
) -> None:
    """20 identical requests at once while the upstream takes 200 ms: it sees one call; the
    first request is the MISS, the 19 others wait for it and are HITs."""
    sim.config.latency_ms, sim.config.latency_sigma = 200, 0.0
    results = await asyncio.gather(*(chat(cached) for _ in range(20)))
    assert model_calls(sim) == 1
    assert sorted(status for status, _ in results) == ["HIT"] * 19 + ["MISS"]
    assert len({text for _, text in results}) == 1


async def test_answers_are_shared_only_within_their_scope(
    cached: TestServer, sim: Simulator
) -> None:
    """Scope user: bob never gets alice's answer. Scope tenant: users of one tenant share,
    another tenant does not. Scope global: everyone shares."""
    assert (await chat(cached, user="alice"))[0] == "MISS"
    await settled(cached)
    assert (await chat(cached, user="bob"))[0] == "MISS"
    acme = {"X-Sidecar-Operation": "team", "X-Sidecar-Tenant": "acme"}
    globex = {"X-Sidecar-Operation": "team", "X-Sidecar-Tenant": "globex"}
    assert (await chat(cached, user="alice", headers=acme))[0] == "MISS"
    await settled(cached)
    assert (await chat(cached, user="bob", headers=acme))[0] == "HIT"
    assert (await chat(cached, user="bob", headers=globex))[0] == "MISS"
    everyone = {"X-Sidecar-Operation": "everyone"}
    assert (await chat(cached, user="alice", headers=everyone))[0] == "MISS"
    await settled(cached)
    assert (await chat(cached, user="carol", headers=everyone))[0] == "HIT"
    assert model_calls(sim) == 5


async def test_delete_sidecar_cache_invalidates_one_operation(
    cached: TestServer, sim: Simulator
) -> None:
    """DELETE /sidecar/cache?operation=chat removes chat's entries and says how many; other
    operations keep theirs."""
    await chat(cached, user="alice")
    await chat(cached, user="bob")
    async with sdk(cached) as client:
        await client.embeddings.create(model="text-embedding-3-small", input="hello")
        await settled(cached)
        async with aiohttp.ClientSession() as http:
            url = cached.make_url("/sidecar/cache").with_query(operation="chat")
            async with http.delete(url) as response:
                assert response.status == 200
                assert (await response.json())["removed"] == 2
        assert (await chat(cached, user="alice"))[0] == "MISS"
        embedding = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="hello"
        )
        assert embedding.headers["X-Sidecar-Cache"] == "HIT"


async def test_errors_and_cut_streams_are_not_stored(cached: TestServer, sim: Simulator) -> None:
    """An upstream error and a stream cut mid-way leave nothing stored: the next identical
    request calls the upstream."""
    with pytest.raises(openai.BadRequestError):
        await chat(cached, headers={"X-Mock-Outcome": "400"})
    with pytest.raises(openai.APIError):
        await chat_stream(cached, headers={"X-Mock-Outcome": "reset"})
    await settled(cached)
    assert (await chat(cached))[0] == "MISS"
    assert model_calls(sim) == 3


async def test_fallback_answers_are_not_stored(
    upstream: TestServer, make_sidecar: MakeSidecar, sim: Simulator
) -> None:
    """An answer a fallback model gave is not stored: once the requested model is back, the
    same request gets it."""
    chain = {"chat": {**CACHED["chat"], "fallbacks": ["gpt-4o", "gpt-4o-mini"], "max_attempts": 1}}
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=chain)
    sim.script("gpt-4o", [503])
    async with sdk(sidecar) as client:
        degraded = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES
        )
        assert degraded.headers["X-Sidecar-Fallback"] == "gpt-4o->gpt-4o-mini"
        await settled(sidecar)
        again = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES
        )
    assert again.headers["X-Sidecar-Cache"] == "MISS"
    assert again.parse().model == "gpt-4o"


async def test_an_unreachable_redis_means_bypass_never_an_error(
    upstream: TestServer,
    make_sidecar: MakeSidecar,
    unused_tcp_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Redis down every request is answered (200, BYPASS) and the cache logs one warning."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        operations=CACHED,
        redis_url=f"redis://127.0.0.1:{unused_tcp_port}/0",
    )
    caplog.set_level(logging.WARNING, logger="sidecar.pipeline.cache")
    for _ in range(3):
        assert (await chat(sidecar))[0] == "BYPASS"
    warnings = [r for r in caplog.records if r.name == "sidecar.pipeline.cache"]
    assert len(warnings) == 1


async def test_entries_expire_after_the_operation_ttl(
    upstream: TestServer, aiohttp_server: ServerFactory, provider_key: str, sleeps: Sleeps
) -> None:
    """An answer is served for cache_ttl_s, then fetched again (injected clock)."""
    now = [1000.0]
    usage = await open_usage_store("sqlite:///:memory:")
    backends = Backends(MemoryCounters(), MemoryCache(clock=lambda: now[0]), usage, MemoryJobs())
    settings = sidecar_settings(str(upstream.make_url("/v1")), operations=CACHED)
    sidecar = await aiohttp_server(create_app(settings, Overrides(sleep=sleeps, backends=backends)))
    assert (await chat(sidecar))[0] == "MISS"
    await settled(sidecar)
    now[0] += TTL_S - 1
    assert (await chat(sidecar))[0] == "HIT"
    now[0] += 2
    assert (await chat(sidecar))[0] == "MISS"
