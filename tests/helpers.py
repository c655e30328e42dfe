"""What the tests share: the keys, the messages, the SDK client, the sidecar settings, and
builders for unit tests of single stages (no sockets)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.config import Settings, settings_from_dict
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.body import BodyLimit

REDIS_URL = os.environ.get("SIDECAR_TEST_REDIS", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get("SIDECAR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PROVIDER_KEY = "sk-provider-secret-0123456789"
APP_KEY = "sk-app-key-should-never-reach-upstream"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]

ServerFactory = Callable[..., Awaitable[TestServer]]
MakeSidecar = Callable[..., Awaitable[TestServer]]


class Sleeps:
    """Stands in for asyncio.sleep between retries: records each delay, waits for none.

    Tests whose subject is not timing use it, so retries cost no wall-clock time and the delays
    the sidecar chose can be asserted on.
    """

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def chat_status(server: TestServer, model: str = "gpt-4o-mini", **headers: str) -> int:
    """One chat call through the real SDK; the HTTP status the app got."""
    async with sdk(server) as client:
        try:
            await client.chat.completions.create(
                model=model, messages=MESSAGES, extra_headers=headers
            )
        except openai.APIStatusError as err:
            return err.status_code
    return 200


def sdk(server: TestServer) -> openai.AsyncOpenAI:
    """The real openai SDK pointed at a sidecar, with its own retries off."""
    return openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key=APP_KEY, max_retries=0)


def sim_provider(upstream_url: str, **settings: Any) -> dict[str, Any]:
    """A provider entry for the simulator; it takes scripted outcomes from X-Mock-Outcome."""
    return {
        "base_url": upstream_url,
        "api_key_env": "SIDECAR_TEST_KEY",
        "forward_headers": ["X-Mock-Outcome"],
        **settings,
    }


def sidecar_settings(upstream_url: str, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "providers": {"sim": sim_provider(upstream_url)},
        "database_url": "sqlite:///:memory:",
    }
    raw.update(overrides)
    if "redis_url" in raw:
        # The production budget per Redis command is tens of ms; a test suite sharing two cores
        # with itself can exceed that and would then see the fail-open path, not the one tested.
        raw["backends"] = {"redis_timeout_ms": 1000, **raw.get("backends", {})}
    return settings_from_dict(raw)


def exchange(
    path: str = "chat/completions",
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    query: str = "",
) -> Exchange:
    raw = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else b"")

    async def read_body(limit: int) -> bytes:
        if len(raw) > limit:
            raise BodyLimit
        return raw

    return Exchange(
        request_id="req-test",
        method=method,
        path=path,
        query=query,
        headers=CIMultiDictProxy(CIMultiDict(headers or {})),
        read_body=read_body,
    )


class Recorder:
    """A terminal ``call_next`` that records the exchange it got and answers a fixed reply."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply or Reply(200, body=b"{}")
        self.seen: list[Exchange] = []

    async def __call__(self, ex: Exchange) -> Reply:
        self.seen.append(ex)
        return self.reply


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A scratch PostgreSQL database, dropped afterwards."""
    name = f"sidecar_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not available at {PG_ADMIN_URL}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def webhook_receiver(
    aiohttp_server: ServerFactory,
) -> tuple[list[dict[str, Any]], TestServer]:
    """A webhook endpoint at /hook: the JSON bodies it received, and its server."""
    alerts: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        alerts.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return alerts, await aiohttp_server(app)
