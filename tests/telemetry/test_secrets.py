"""Nothing secret leaves the sidecar: not in logs, spans, metrics, readiness or error bodies.

One run exercises the paths that handle secrets — the provider key on every call, a provider
that rejects it (401), a webhook whose URL carries its token, a Redis URL with a password, the
admin token — then everything the sidecar emitted is searched for each secret.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
import openai
import orjson
import pytest

from sidecar.simulator import Simulator
from tests.helpers import APP_KEY, MESSAGES, PROVIDER_KEY
from tests.telemetry.conftest import Observed

WEBHOOK_TOKEN = "T0000/B0000/webhook-secret-token"
REDIS_PASSWORD = "redis-password-hunter2"
ADMIN_TOKEN = "admin-token-correct-horse"


async def test_no_secret_appears_in_anything_the_sidecar_emits(
    observe: Callable[..., Awaitable[Observed]],
    sim: Simulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    unused_tcp_port: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SIDECAR_ADMIN_TOKEN", ADMIN_TOKEN)
    sim.config.latency_ms = 5
    observed = await observe(
        operations={"chat": {"slow_ms": 1, "fallbacks": []}},
        alerts={"webhook_url": f"http://127.0.0.1:{unused_tcp_port}/services/{WEBHOOK_TOKEN}"},
        redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{unused_tcp_port}/0",
    )
    emitted: list[str] = []
    async with observed.client as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        for outcome in ("401", "503", "garbage"):
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, extra_headers={"X-Mock-Outcome": outcome}
                )
            emitted.append(caught.value.response.text)
    async with aiohttp.ClientSession() as http:
        for path in ("/readyz", "/metrics", "/sidecar/report"):
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with http.get(observed.server.make_url(path), headers=headers) as resp:
                emitted.append(await resp.text())
    await observed.server.close()  # shutdown drains the webhook queue, logging its failure
    emitted += [record.getMessage() for record in caplog.records]
    emitted += [str(record.exc_info) for record in caplog.records if record.exc_info]
    for span in observed.spans.get_finished_spans():
        emitted.append(orjson.dumps(dict(span.attributes or {})).decode())
        emitted += [orjson.dumps(dict(e.attributes or {})).decode() for e in span.events]
    everything = "\n".join(emitted)
    assert "webhook" in everything.lower()  # the failing webhook was reported, by host only
    for secret in (PROVIDER_KEY, APP_KEY, WEBHOOK_TOKEN, REDIS_PASSWORD, ADMIN_TOKEN):
        assert secret not in everything
