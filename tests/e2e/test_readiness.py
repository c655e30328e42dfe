"""/readyz lists every backend with its state; an unreachable one degrades, never crashes."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
from aiohttp.test_utils import TestServer

from tests.helpers import APP_KEY, MakeSidecar

BACKENDS = ("redis", "rate_limit", "cache", "database", "queues")  # SPEC's, plus the cache


async def readiness(server: TestServer) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/readyz")) as resp:
        return resp.status, await resp.json()


async def test_readyz_lists_each_backend_healthy_by_default(sidecar: TestServer) -> None:
    """The embedded defaults (in-process counters, cache, jobs; SQLite) all report healthy."""
    status, body = await readiness(sidecar)
    assert status == 200
    assert body["status"] == "healthy"
    for name in BACKENDS:
        assert body["services"][name]["status"] == "healthy"
    assert body["services"]["database"]["backend"] == "sqlite"
    assert body["services"]["rate_limit"]["backend"] == "in-process"


async def test_readyz_reports_redis_backends_when_configured(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """With redis_url set, counters, cache and queues are Redis, each with a latency."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")), redis_url="redis://127.0.0.1:6379/0"
    )
    _, body = await readiness(sidecar)
    for name in ("redis", "rate_limit", "cache", "queues"):
        service = body["services"][name]
        assert (service["backend"], service["status"]) == ("redis", "healthy")
        assert service["latency_ms"] is not None


async def test_an_unreachable_redis_degrades_readiness_and_requests_still_work(
    upstream: TestServer, make_sidecar: MakeSidecar, unused_tcp_port: int
) -> None:
    """A configured Redis that is down: start-up goes on, /readyz says degraded and why."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        redis_url=f"redis://:hunter2@127.0.0.1:{unused_tcp_port}/0",
    )
    status, body = await readiness(sidecar)
    assert status == 200
    assert body["status"] == "degraded"
    rate_limit = body["services"]["rate_limit"]
    assert rate_limit["status"] == "degraded"  # limits go on in process meanwhile
    assert str(unused_tcp_port) in rate_limit["message"]
    assert body["services"]["redis"]["status"] == "unhealthy"
    assert str(unused_tcp_port) in body["services"]["redis"]["message"]
    assert "hunter2" not in str(body)  # the password never shows
    async with openai.AsyncOpenAI(
        base_url=str(sidecar.make_url("/v1")), api_key=APP_KEY, max_retries=0
    ) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content


async def test_the_usage_report_of_an_unreachable_database_is_a_503_that_says_so(
    upstream: TestServer, make_sidecar: MakeSidecar, unused_tcp_port: int
) -> None:
    """GET /sidecar/usage while PostgreSQL does not answer: 503 MODEL_UNAVAILABLE naming the
    usage database (its records wait in the journal), not a 500 with a traceback."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        database_url=f"postgresql://u:pw@127.0.0.1:{unused_tcp_port}/usage",
    )
    url = sidecar.make_url("/sidecar/usage?user=alice")
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        status, body = resp.status, await resp.json()
    assert status == 503
    assert body["error"]["reason"] == "usage_store_unavailable"
    assert "usage database" in body["error"]["message"]
    assert "pw" not in str(body)
