"""Slow-operation webhooks: sent in the background, deduplicated, never slowing requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.background import Background
from sidecar.simulator import Simulator
from sidecar.telemetry.alerts import WebhookAlerts
from tests.helpers import MESSAGES, MakeSidecar, ServerFactory, sdk
from tests.telemetry.conftest import Observed


class Receiver:
    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.alerts.append(await request.json())
        self.arrived.set()
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


async def slow_chat_alerts(
    aiohttp_server: ServerFactory, sim: Simulator
) -> tuple[Receiver, dict[str, Any]]:
    """A webhook receiver, a simulator answering in 20 ms, and the config (chat slow past
    5 ms, alerts to the receiver) that makes every chat call a slow operation."""
    receiver = Receiver()
    hook = await aiohttp_server(receiver.app())
    sim.config.latency_ms = 20
    sim.config.latency_sigma = 0.01
    settings = {
        "operations": {"chat": {"slow_ms": 5}},
        "alerts": {"webhook_url": str(hook.make_url("/hook"))},
    }
    return receiver, settings


async def test_slow_operation_posts_one_deduplicated_webhook(
    observe: Callable[..., Awaitable[Observed]],
    aiohttp_server: ServerFactory,
    sim: Simulator,
) -> None:
    """Five slow chat requests produce one alert with operation, model, timing and ids."""
    receiver, settings = await slow_chat_alerts(aiohttp_server, sim)
    observed = await observe(**settings)
    async with observed.client:
        for _ in range(5):
            raw = await observed.client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
    await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
    (alert,) = receiver.alerts
    assert alert["alert"] == "slow_operation"
    assert (alert["operation"], alert["model"], alert["threshold_ms"]) == ("chat", "gpt-4o-mini", 5)
    assert alert["duration_ms"] >= 20
    assert len(alert["trace_id"]) == 32
    assert alert["request_id"]
    assert raw.headers["x-request-id"] != ""


async def test_a_dead_webhook_drops_alerts_without_blocking(unused_tcp_port: int) -> None:
    """notify() never waits; past the background queue's capacity alerts are dropped."""
    background = Background(capacity=2, workers=1)
    alerts = WebhookAlerts(f"http://127.0.0.1:{unused_tcp_port}/hook/secret-path", dedup_s=0)
    alerts.start(background)
    try:
        accepted = [alerts.notify(("k", str(i)), {"i": i}) for i in range(10)]
        assert accepted[:2] == [True, True]
        assert alerts.suppressed >= 1
        background.start()
        await background.drain(5)
    finally:
        await alerts.close()
    assert alerts.sent == 0


async def test_without_tracing_the_slow_operation_alert_carries_the_apps_trace_id(
    make_sidecar: MakeSidecar, upstream: TestServer, aiohttp_server: ServerFactory, sim: Simulator
) -> None:
    """No span consumer, so no span: the alert names the app's own trace (its traceparent)."""
    receiver, settings = await slow_chat_alerts(aiohttp_server, sim)
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), **settings)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with sdk(sidecar) as client:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
    await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
    (alert,) = receiver.alerts
    assert alert["trace_id"] == trace_id
