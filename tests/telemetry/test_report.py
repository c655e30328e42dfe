"""GET /sidecar/report and `llm-sidecar report`: SPEC shape, admin token, real percentiles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from sidecar.cli import show_report
from sidecar.simulator import Simulator
from tests.helpers import MESSAGES
from tests.telemetry.conftest import Observed


async def get_report(server: TestServer, token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/sidecar/report"), headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_report_has_the_spec_shape(observed: Observed) -> None:
    """summary, by_operation (with p50/p95/p99) and recommendations, as SPEC lists them."""
    for _ in range(3):
        await observed.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    await observed.client.embeddings.create(model="text-embedding-3-small", input="x")
    status, report = await get_report(observed.server)
    assert status == 200
    assert {
        "total_operations",
        "average_latency_ms",
        "error_rate",
        "cache_hit_rate",
        "total_cost_usd",
        "slow_operations",
    } <= set(report["summary"])
    assert report["summary"]["total_operations"] == 4
    chat = report["by_operation"][0]
    assert (chat["operation"], chat["count"], chat["success_rate"]) == ("chat", 3, 1.0)
    assert set(chat["latency_ms"]) == {"p50", "p95", "p99"}
    assert isinstance(report["recommendations"], list)


async def test_percentiles_follow_the_simulators_latency(
    observe: Callable[..., Awaitable[Observed]], sim: Simulator
) -> None:
    """With a 20 ms median upstream, the report's p50 is 20 ms plus a little, not more."""
    sim.config.latency_ms = 20
    sim.config.latency_sigma = 0.3
    observed = await observe()
    async with observed.client:
        for _ in range(40):
            await observed.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    drawn = np.array([seen.latency_s for seen in sim.seen]) * 1000
    _, report = await get_report(observed.server)
    p50 = report["by_operation"][0]["latency_ms"]["p50"]
    assert np.percentile(drawn, 50) <= p50 < np.percentile(drawn, 50) + 15


async def test_report_needs_the_admin_token_when_set(
    observe: Callable[..., Awaitable[Observed]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SIDECAR_ADMIN_TOKEN set, the report is 401 UNAUTHORIZED without the bearer token."""
    monkeypatch.setenv("SIDECAR_ADMIN_TOKEN", "admin-secret")
    observed = await observe()
    await observed.client.close()
    status, body = await get_report(observed.server)
    assert status == 401
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert (await get_report(observed.server, "wrong"))[0] == 401
    assert (await get_report(observed.server, "admin-secret"))[0] == 200


async def test_recommendations_come_from_the_data(
    observe: Callable[..., Awaitable[Observed]], sim: Simulator
) -> None:
    """Repeated identical prompts without cache and a p95 over slow_ms produce advice."""
    sim.config.latency_ms = 15
    sim.config.latency_sigma = 0.01
    observed = await observe(operations={"intent": {"slow_ms": 5, "cache_ttl_s": 0}})
    async with observed.client:
        for _ in range(25):
            await observed.client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                extra_headers={"X-Sidecar-Operation": "intent"},
            )
    _, report = await get_report(observed.server)
    advice = " | ".join(report["recommendations"])
    assert "intent p95" in advice
    assert "exceeds its 0.005 s threshold" in advice
    assert "identical requests repeat 96%" in advice
    assert "set operations.intent.cache_ttl_s" in advice
    assert report["summary"]["slow_operations"] == 25


async def test_report_command_prints_tables(
    observed: Observed, capsys: pytest.CaptureFixture[str]
) -> None:
    """`llm-sidecar report --url` renders the live report as tables."""
    await observed.client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert await show_report(str(observed.server.make_url("/"))) == 0
    out = capsys.readouterr().out
    assert "By operation" in out
    assert "gpt-4o-mini" in out


async def test_report_command_explains_an_unreachable_sidecar(
    unused_tcp_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """When nothing listens, the command says so and what to run."""
    assert await show_report(f"http://127.0.0.1:{unused_tcp_port}") == 1
    assert "llm-sidecar serve" in capsys.readouterr().err
