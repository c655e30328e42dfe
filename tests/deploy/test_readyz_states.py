"""/readyz under each failure an orchestrator must tell apart: 503 only when nothing can be served.

Services really go away: Redis, PostgreSQL and the simulated upstream are reached through a TCP
switch that the test cuts (every open connection and the listening socket), so the sidecar sees
what it would see when the service dies. The probe is not cached between checks here
(``probe_ttl_s: 0``) so each check sees the present.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sidecar.simulator import Simulator
from sidecar.upstream.probe import LIVE_MIN_CALLS
from tests.helpers import (
    PG_ADMIN_URL,
    REDIS_URL,
    MakeSidecar,
    chat_status,
    scratch_database,
)

NO_CACHE = {"health": {"probe_ttl_s": 0, "probe_timeout_s": 2}}
# No fallback chain: a failing model stays a failure of that model (its own breaker only).
ONE_MODEL = {"operations": {"chat": {"fallbacks": [], "max_attempts": 1}}}


class Switch:
    """A TCP forwarder to a real service, which the test can cut: the service "goes down"."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones, both ways."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.close()


@pytest.fixture
async def switch_factory() -> AsyncIterator[list[Switch]]:
    switches: list[Switch] = []
    yield switches
    for switch in switches:
        await switch.cut()


async def switched(switches: list[Switch], host: str, port: int) -> int:
    switch = Switch(host, port)
    switches.append(switch)
    return await switch.start()


async def readiness(server: TestServer) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/readyz")) as resp:
        return resp.status, await resp.json()


async def test_redis_going_down_degrades_readiness_and_requests_go_on(
    key_prefix: str, upstream: TestServer, make_sidecar: MakeSidecar, switch_factory: list[Switch]
) -> None:
    """Redis dies under a running sidecar: 200 degraded, the Redis-backed services say so."""
    host, port = REDIS_URL.removeprefix("redis://").split("/", 1)[0].split(":")
    redis_port = await switched(switch_factory, host, int(port))
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        backends={"redis_prefix": key_prefix},
        jobs={"workers": False},
        **NO_CACHE,
    )
    status, before = await readiness(sidecar)
    assert (status, before["status"]) == (200, "healthy")
    assert before["services"]["rate_limit"]["backend"] == "redis"

    await switch_factory[0].cut()
    status, after = await readiness(sidecar)
    assert (status, after["status"]) == (200, "degraded")
    assert after["services"]["upstream"]["status"] == "healthy"
    assert after["services"]["rate_limit"]["status"] == "degraded"  # limits go on in process
    for name in ("cache", "queues"):
        assert after["services"][name]["status"] != "healthy", after["services"][name]
    assert str(redis_port) in after["services"]["rate_limit"]["message"]
    assert await chat_status(sidecar) == 200  # the proxy still serves


async def test_database_going_down_degrades_readiness_and_requests_go_on(
    upstream: TestServer,
    make_sidecar: MakeSidecar,
    switch_factory: list[Switch],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL dies under a running sidecar: 200 degraded, records wait in the journal."""
    monkeypatch.chdir(tmp_path)  # a PostgreSQL journal goes to the working directory
    async with scratch_database() as url:
        host_port = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.split(":")
        pg_port = await switched(switch_factory, host, int(port))
        sidecar = await make_sidecar(
            str(upstream.make_url("/v1")),
            database_url=url.replace(host_port, f"127.0.0.1:{pg_port}"),
            **NO_CACHE,
        )
        status, before = await readiness(sidecar)
        assert (status, before["status"]) == (200, "healthy")
        assert before["services"]["database"]["backend"] == "postgresql"

        await switch_factory[0].cut()
        status, after = await readiness(sidecar)
        assert (status, after["status"]) == (200, "degraded")
        assert after["services"]["database"]["status"] != "healthy"
        assert after["services"]["upstream"]["status"] == "healthy"
        assert await chat_status(sidecar, **{"X-Sidecar-User": "journal-check"}) == 200
    # The answered call's usage record is kept locally (its write-ahead segment or the
    # journal) until the database comes back.
    assert any('"user":"journal-check"' in text for text in local_records(tmp_path))


def local_records(directory: Path) -> list[str]:
    """The usage journal and write-ahead segments a sidecar keeps in ``directory``."""
    return [path.read_text() for path in directory.glob("*sidecar-usage-*") if path.is_file()]


async def test_upstream_going_down_makes_the_sidecar_unready(
    upstream: TestServer, make_sidecar: MakeSidecar, switch_factory: list[Switch]
) -> None:
    """The only provider stops answering: the sidecar cannot serve, so 503 unhealthy."""
    sim_port = await switched(switch_factory, "127.0.0.1", upstream.port or 0)
    sidecar = await make_sidecar(f"http://127.0.0.1:{sim_port}/v1", **NO_CACHE)
    status, before = await readiness(sidecar)
    assert (status, before["status"]) == (200, "healthy")
    assert before["services"]["upstream"]["latency_ms"] is not None

    await switch_factory[0].cut()
    status, after = await readiness(sidecar)
    assert (status, after["status"]) == (503, "unhealthy")
    upstream_entry = after["services"]["upstream"]
    assert upstream_entry["status"] == "unhealthy"
    assert upstream_entry["providers"]["sim"]["latency_ms"] is None
    assert "no provider answers" in upstream_entry["message"]
    # The backends are fine: only the upstream makes it unready.
    assert after["services"]["database"]["status"] == "healthy"


async def test_breakers_opened_by_live_traffic_show_and_503_only_when_all_are_open(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """A route whose calls fail opens its circuit: degraded while another route works, 503
    once every route the sidecar knows of is open."""
    breaker = {"consecutive_failures": 2, "min_calls": 100, "open_s": 60, "max_open_s": 60}
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")), resilience={"breaker": breaker}, **ONE_MODEL, **NO_CACHE
    )
    assert await chat_status(sidecar, "gpt-4o-mini") == 200  # a route the sidecar now knows, closed
    for _ in range(2):
        assert await chat_status(sidecar, "gpt-4o", **{"X-Mock-Outcome": "500"}) >= 500

    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (200, "degraded")
    circuits = {c["model"]: c["state"] for c in body["services"]["upstream"]["circuits"]}
    assert circuits == {"gpt-4o-mini": "closed", "gpt-4o": "open"}
    assert "circuit sim/gpt-4o open" in body["services"]["upstream"]["message"]

    for _ in range(2):
        assert await chat_status(sidecar, "gpt-4o-mini", **{"X-Mock-Outcome": "500"}) >= 500
    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (503, "unhealthy")
    assert "every known route has its circuit open" in body["services"]["upstream"]["message"]


async def test_a_slow_upstream_probe_degrades_and_a_timed_out_one_is_unhealthy(
    sim: Simulator, upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """GET /models answering in 1.2 s: degraded (>= 1 s), 200. With a 0.5 s probe timeout the
    same provider counts as unreachable: 503."""
    sim.config.latency_ms = 1200
    sim.config.latency_sigma = 0.0  # exactly 1.2 s
    url = str(upstream.make_url("/v1"))
    sidecar = await make_sidecar(url, **NO_CACHE)
    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (200, "degraded")
    upstream_entry = body["services"]["upstream"]
    assert upstream_entry["status"] == "degraded"
    assert 1200 <= upstream_entry["latency_ms"] < 2000
    assert "slower than 1000 ms" in upstream_entry["message"]

    impatient = await make_sidecar(url, health={"probe_ttl_s": 0, "probe_timeout_s": 0.5})
    status, body = await readiness(impatient)
    assert (status, body["status"]) == (503, "unhealthy")


async def test_live_calls_failing_across_routes_degrade_even_with_every_circuit_closed(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """Half or more of the last minute's model calls failing degrades the upstream, though no
    single route failed often enough to open its breaker; the client's own mistakes never do."""
    breaker = {"consecutive_failures": 1000, "min_calls": 1000}
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")), resilience={"breaker": breaker}, **ONE_MODEL, **NO_CACHE
    )
    models = ("gpt-4o", "gpt-4o-mini")
    for i in range(LIVE_MIN_CALLS):  # the client's mistakes: 400 from the provider
        assert await chat_status(sidecar, models[i % 2], **{"X-Mock-Outcome": "400"}) == 400
    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (200, "healthy")
    assert body["services"]["upstream"]["live"]["calls"] == 0

    for i in range(LIVE_MIN_CALLS):
        assert await chat_status(sidecar, models[i % 2], **{"X-Mock-Outcome": "503"}) >= 500
    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (200, "degraded")
    live = body["services"]["upstream"]["live"]
    assert (live["calls"], live["failed"]) == (LIVE_MIN_CALLS, LIVE_MIN_CALLS)
    assert {c["state"] for c in body["services"]["upstream"]["circuits"]} == {"closed"}
    assert (
        f"live traffic: {LIVE_MIN_CALLS} of {LIVE_MIN_CALLS}"
        in (body["services"]["upstream"]["message"])
    )


async def test_the_only_provider_refusing_the_key_in_live_traffic_is_unready(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """Live calls answered 401: the provider rests (and says so) while GET /models still works;
    it was the only one, so nothing can be served until it is called again: 503."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), **ONE_MODEL, **NO_CACHE)
    assert await chat_status(sidecar, **{"X-Mock-Outcome": "401"}) >= 400
    status, body = await readiness(sidecar)
    assert (status, body["status"]) == (503, "unhealthy")
    upstream_entry = body["services"]["upstream"]
    provider = upstream_entry["providers"]["sim"]
    assert (provider["status"], provider["resting"]) == ("healthy", True)  # the probe passes
    assert "sim rejected the sidecar's credentials" in upstream_entry["message"]


async def test_readiness_carries_the_live_figures(sidecar: TestServer) -> None:
    """``metrics``: the report window's requests, latency and rates, beside the health."""
    for _ in range(3):
        assert await chat_status(sidecar) == 200
    status, body = await readiness(sidecar)
    assert status == 200
    assert body["metrics"]["total_operations"] == 3
    assert body["metrics"]["error_rate"] == 0.0
    assert body["metrics"]["average_latency_ms"] > 0
    assert "total_cost_usd" not in body["metrics"]  # /readyz is not an admin endpoint
