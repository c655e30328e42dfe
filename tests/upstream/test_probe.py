"""Readiness of the upstream: a cached, cheap probe per provider plus the circuit breakers."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.server import RUNTIME
from sidecar.simulator import Simulator
from tests.helpers import MakeSidecar, ServerFactory


async def readiness(server: TestServer) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/readyz")) as resp:
        return resp.status, await resp.json()


def probes(sim: Simulator) -> int:
    return sum(1 for seen in sim.seen if seen.path == "/v1/models")


async def test_a_reachable_upstream_is_healthy_and_probed_once_per_ttl(
    sidecar: TestServer, sim: Simulator
) -> None:
    """Ten readiness checks in a row cost the provider one GET /models, not ten."""
    for _ in range(10):
        status, body = await readiness(sidecar)
        assert status == 200
    upstream = body["services"]["upstream"]
    assert upstream["status"] == "healthy"
    assert upstream["providers"]["sim"]["status"] == "healthy"
    assert upstream["latency_ms"] is not None
    assert probes(sim) == 1


async def test_concurrent_checks_share_one_probe(sidecar: TestServer, sim: Simulator) -> None:
    """Twenty simultaneous /readyz calls wait on the same probe."""
    results = await asyncio.gather(*(readiness(sidecar) for _ in range(20)))
    assert {status for status, _ in results} == {200}
    assert probes(sim) == 1


async def test_an_unreachable_upstream_makes_the_sidecar_unready(
    make_sidecar: MakeSidecar, unused_tcp_port: int
) -> None:
    """No provider answers: 503 unhealthy, saying why."""
    sidecar = await make_sidecar(f"http://127.0.0.1:{unused_tcp_port}/v1")
    status, body = await readiness(sidecar)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert "no provider answers" in body["services"]["upstream"]["message"]


async def test_every_known_route_open_makes_the_sidecar_unready(sidecar: TestServer) -> None:
    """All circuits the sidecar knows of are open: it cannot serve, so 503."""
    rt = sidecar.app[RUNTIME]
    for model in ("gpt-4o", "gpt-4o-mini"):
        rt.breakers.get("sim", model).force_open(60)
    status, body = await readiness(sidecar)
    assert status == 503
    assert "circuit open" in body["services"]["upstream"]["message"]


async def test_one_open_circuit_among_several_only_degrades(sidecar: TestServer) -> None:
    """Another route still works: 200, degraded, naming the open circuit."""
    rt = sidecar.app[RUNTIME]
    rt.breakers.get("sim", "gpt-4o").force_open(60)
    rt.breakers.get("sim", "gpt-4o-mini")
    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (200, "degraded")
    assert "sim/gpt-4o open" in body["services"]["upstream"]["message"]


async def test_a_provider_refusing_the_key_degrades(
    aiohttp_server: ServerFactory, make_sidecar: MakeSidecar
) -> None:
    """A provider that refuses the sidecar's key answers, but cannot serve: degraded."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "bad key"}}, status=401)

    app = web.Application()
    app.router.add_get("/v1/models", refuse)
    upstream = await aiohttp_server(app)
    sidecar = await make_sidecar(str(upstream.make_url("/v1")))
    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (200, "degraded")
    assert "refuses the sidecar's key" in body["services"]["upstream"]["message"]
