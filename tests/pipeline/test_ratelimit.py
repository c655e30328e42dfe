"""Rate limits: exact sliding windows per user x operation, tokens per user x model, headers,
analytics, and what happens when the shared Redis goes away."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aiohttp
import openai
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.backends import Backends, Limit
from sidecar.backends.memory import MemoryCache, MemoryCounters, MemoryJobs
from sidecar.backends.setup import open_usage_store
from sidecar.runtime import Overrides
from sidecar.server import RUNTIME, create_app
from sidecar.simulator import Simulator
from tests.helpers import APP_KEY, MESSAGES, REDIS_URL, MakeSidecar, ServerFactory, sidecar_settings
from tests.pipeline.cache_harness import chat_answer

LIMIT_5: dict[str, Any] = {"chat": {"rate_limit": {"requests": 5, "per_s": 60}, "fallbacks": []}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def post_chat(
    http: aiohttp.ClientSession, server: TestServer, user: str = "alice", **body: Any
) -> aiohttp.ClientResponse:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
    async with http.post(
        server.make_url("/v1/chat/completions"), json=payload, headers={"X-Sidecar-User": user}
    ) as resp:
        await resp.read()
        return resp


@pytest.fixture
async def limited(
    upstream: TestServer, make_sidecar: MakeSidecar, shared_state: dict[str, Any]
) -> TestServer:
    """A sidecar with chat limited to 5 per minute per user, in process or in Redis."""
    return await make_sidecar(str(upstream.make_url("/v1")), operations=LIMIT_5, **shared_state)


async def test_concurrent_requests_for_one_user_admit_exactly_the_limit(
    limited: TestServer, sim: Simulator
) -> None:
    """100 simultaneous requests from alice with a limit of 5: exactly 5 reach the model."""
    async with aiohttp.ClientSession() as http:
        responses = await asyncio.gather(*(post_chat(http, limited) for _ in range(100)))
    statuses = [r.status for r in responses]
    assert statuses.count(200) == 5
    assert statuses.count(429) == 95
    assert len([s for s in sim.seen if s.model]) == 5


async def test_limits_are_per_user(limited: TestServer) -> None:
    """bob has his own window: alice using hers up does not limit him."""
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            await post_chat(http, limited, "alice")
        assert (await post_chat(http, limited, "alice")).status == 429
        assert (await post_chat(http, limited, "bob")).status == 200


async def test_answers_carry_the_window_and_rejections_say_when_to_retry(
    limited: TestServer,
) -> None:
    """X-RateLimit-* on every answer of a limited operation; 429 RATE_LIMIT with Retry-After."""
    async with aiohttp.ClientSession() as http:
        first = await post_chat(http, limited)
        for _ in range(4):
            await post_chat(http, limited)
        refused = await post_chat(http, limited)
    assert first.status == 200
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == (
        "5",
        "4",
    )
    reset = datetime.fromisoformat(first.headers["X-RateLimit-Reset"])
    assert reset.tzinfo is not None
    assert refused.status == 429
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    assert "x-should-retry" not in refused.headers  # an SDK may wait and retry on its own


async def test_the_sdk_sees_a_rate_limit_error_with_the_envelope(limited: TestServer) -> None:
    """The openai SDK raises RateLimitError; the body says which limit and when."""
    async with openai.AsyncOpenAI(
        base_url=str(limited.make_url("/v1")), api_key=APP_KEY, max_retries=0
    ) as client:
        for _ in range(5):
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    error = caught.value.response.json()["error"]
    assert (error["code"], error["reason"]) == ("RATE_LIMIT", "requests_per_window")
    assert error["retry_after_s"] >= 55


async def test_no_rolling_window_ever_holds_more_than_the_limit(
    upstream: TestServer, aiohttp_server: ServerFactory, provider_key: str
) -> None:
    """Requests every 7 s of fake time against 3 per 20 s: admissions are spaced so that any
    20 s window holds at most 3 — the sliding log, not a fixed window that allows 6 at a
    boundary."""
    clock = Clock()
    usage = await open_usage_store("sqlite:///:memory:")
    backends = Backends(MemoryCounters(clock=clock), MemoryCache(), usage, MemoryJobs())
    settings = sidecar_settings(
        str(upstream.make_url("/v1")),
        operations={"chat": {"rate_limit": {"requests": 3, "per_s": 20}, "fallbacks": []}},
    )
    server = await aiohttp_server(create_app(settings, Overrides(backends=backends)))
    admitted: list[float] = []
    async with aiohttp.ClientSession() as http:
        for step in range(40):
            clock.now = 1000.0 + step * 2.5
            for _ in range(2):  # bursts of two
                if (await post_chat(http, server)).status == 200:
                    admitted.append(clock.now)
    assert len(admitted) > 10
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + 20) <= 3


async def test_token_limits_reserve_the_estimate_and_settle_to_real_usage(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """tokens: 1000 per minute per user and model. A request reserves its prompt plus
    max_tokens; one that failed gives its reservation back, one that answered keeps what it
    used (the simulator writes max_tokens words), so the next big request does not fit."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        operations={
            "chat": {"rate_limit": {"requests": 100, "per_s": 60, "tokens": 1000}, "fallbacks": []}
        },
    )
    rt = sidecar.app[RUNTIME]

    tokens = Limit("sidecar:rl:{anonymous}:tok:gpt-4o-mini", 1000, 60, kind="gcra")

    async def settled(at_most: int) -> None:
        """Settling happens after the reply, batched, in the background: wait (bounded) until
        the token window shows it."""
        for _ in range(300):
            (window,) = await rt.backends.counters.peek([tokens])
            if window.count <= at_most:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"tokens in the window stayed above {at_most}")

    async with aiohttp.ClientSession() as http:
        async with http.post(
            sidecar.make_url("/v1/chat/completions"),
            json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 900},
            headers={"X-Mock-Outcome": "400"},
        ) as failed:
            assert failed.status == 400
        await settled(at_most=0)  # the failed call's ~900 are given back
        used = await post_chat(http, sidecar, max_tokens=500)  # ~500 reserved and used
        assert used.status == 200
        small = await post_chat(http, sidecar, max_tokens=300)
        assert small.status == 200
        refused = await post_chat(http, sidecar, max_tokens=300)
    assert refused.status == 429
    body = await refused.json()
    assert body["error"]["reason"] == "tokens_per_window"
    assert "1000 tokens" in body["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Limit"] == "1000"  # the token window that refused


async def test_the_admin_endpoint_reports_each_users_requests_and_rejections(
    limited: TestServer,
) -> None:
    """GET /sidecar/ratelimit/{user}: requests, limited, remaining and reset per operation."""
    async with aiohttp.ClientSession() as http:
        for _ in range(7):
            await post_chat(http, limited)
        async with http.get(limited.make_url("/sidecar/ratelimit/alice")) as resp:
            status = await resp.json()
    chat = status["chat"]
    assert (chat["requests"], chat["limited"], chat["remaining"], chat["limit"]) == (7, 2, 0, 5)
    assert datetime.fromisoformat(chat["reset"]).tzinfo is not None
    assert status["image-generation"]["requests"] == 0


async def test_every_key_of_a_user_shares_one_hash_tag_and_expires(
    key_prefix: str, upstream: TestServer, make_sidecar: MakeSidecar, redis_client: aioredis.Redis
) -> None:
    """Keys carry {user} (one Redis Cluster slot per script) and a TTL."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        redis_url=REDIS_URL,
        backends={"redis_prefix": key_prefix},
        operations={
            "chat": {"rate_limit": {"requests": 5, "per_s": 60, "tokens": 5000}, "fallbacks": []}
        },
    )
    async with aiohttp.ClientSession() as http:
        await post_chat(http, sidecar, "carol")
    keys = [key.decode() async for key in redis_client.scan_iter(match=key_prefix + "rl:*")]
    assert len(keys) == 3  # requests, tokens, tally
    assert all("{carol}" in key for key in keys)
    for key in keys:
        assert 0 < await redis_client.pttl(key) <= 86_400_000


@pytest.fixture
def dead_redis_url(unused_tcp_port: int) -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{unused_tcp_port}/0"


async def test_a_dead_redis_fails_open_to_in_process_limits(
    upstream: TestServer, make_sidecar: MakeSidecar, dead_redis_url: str
) -> None:
    """Redis unreachable: no 5xx; the same limits apply per instance; readiness degraded."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")), operations=LIMIT_5, redis_url=dead_redis_url
    )
    async with aiohttp.ClientSession() as http:
        statuses = [(await post_chat(http, sidecar)).status for _ in range(7)]
        async with http.get(sidecar.make_url("/readyz")) as resp:
            ready = await resp.json()
    assert statuses == [200] * 5 + [429] * 2
    assert ready["services"]["rate_limit"]["status"] == "degraded"


async def test_fail_closed_refuses_while_redis_is_down(
    upstream: TestServer, make_sidecar: MakeSidecar, dead_redis_url: str
) -> None:
    """rate_limit.fail_closed: true — without the shared limiter, refuse rather than guess."""
    operations = {"chat": {"rate_limit": {"requests": 5, "per_s": 60, "fail_closed": True}}}
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")), operations=operations, redis_url=dead_redis_url
    )
    async with aiohttp.ClientSession() as http:
        response = await post_chat(http, sidecar)
        async with http.post(
            sidecar.make_url("/v1/chat/completions"), json={"model": "gpt-4o", "messages": []}
        ) as resp:
            body = await resp.json()
    assert response.status == 429
    assert body["error"]["reason"] == "limiter_unavailable"


async def test_rejections_are_counted_as_rate_limited_not_as_model_errors(
    limited: TestServer,
) -> None:
    """/metrics counts the sidecar's own refusals under outcome rate_limited and in
    sidecar_ratelimit_rejections_total; the report keeps them out of the error rate and the
    client error rate: they are refusals, under the envelope's code RATE_LIMIT."""
    async with aiohttp.ClientSession() as http:
        for _ in range(6):
            await post_chat(http, limited)
        async with http.get(limited.make_url("/metrics")) as resp:
            metrics = await resp.text()
        async with http.get(limited.make_url("/sidecar/report")) as resp:
            report = await resp.json()
    rejections = [
        line for line in metrics.splitlines() if line.startswith("sidecar_ratelimit_rejections")
    ]
    assert len(rejections) == 1
    assert 'sidecar_limit="requests"' in rejections[0]
    assert rejections[0].endswith(" 1.0")
    assert 'sidecar_outcome="rate_limited"' in metrics
    chat = next(row for row in report["by_operation"] if row["operation"] == "chat")
    assert (chat["error_rate"], chat["client_error_rate"]) == (0.0, 0.0)
    assert chat["refused_rate"] > 0
    assert report["summary"]["refused_by_code"] == {"RATE_LIMIT": 1}
    assert report["summary"]["errors_by_code"] == {}


async def test_a_client_waiting_for_each_answer_is_not_refused_by_its_own_reservations(
    aiohttp_server: ServerFactory, make_sidecar: MakeSidecar
) -> None:
    """tokens: 300 per minute; each call reserves its prompt plus max_tokens 250 but the
    answer uses 10. Corrections are applied in batches after the reply, so the next call's
    reservation may still see the last one's 250: a refused reservation applies this
    instance's pending corrections and is checked once more. Three calls in a row pass."""

    async def short_answer(request: web.Request) -> web.Response:
        return web.json_response(chat_answer(1))  # 10 tokens used

    app = web.Application()
    app.router.add_post("/v1/chat/completions", short_answer)
    upstream = await aiohttp_server(app)
    rule = {"requests": 100, "per_s": 60, "tokens": 300}
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")), operations={"chat": {"rate_limit": rule, "fallbacks": []}}
    )
    async with aiohttp.ClientSession() as http:
        statuses = [(await post_chat(http, sidecar, max_tokens=250)).status for _ in range(3)]
    assert statuses == [200, 200, 200]
