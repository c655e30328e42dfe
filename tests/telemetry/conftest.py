"""A sidecar whose spans land in memory, for asserting on real spans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar.runtime import Overrides
from sidecar.server import create_app
from sidecar.telemetry.setup import OtelProviders
from tests.helpers import APP_KEY, ServerFactory, Sleeps, sidecar_settings


@dataclass
class Observed:
    server: TestServer
    spans: InMemorySpanExporter
    client: openai.AsyncOpenAI


@pytest.fixture
def observe(
    upstream: TestServer, aiohttp_server: ServerFactory, provider_key: str, sleeps: Sleeps
) -> Callable[..., Awaitable[Observed]]:
    """Start a sidecar (config overrides as kwargs) whose spans go to an in-memory exporter."""
    clients: list[openai.AsyncOpenAI] = []

    async def start(**overrides: Any) -> Observed:
        spans = InMemorySpanExporter()
        providers = OtelProviders(otlp=False, span_exporter=spans)
        settings = sidecar_settings(str(upstream.make_url("/v1")), **overrides)
        server = await aiohttp_server(create_app(settings, Overrides(otel=providers, sleep=sleeps)))
        client = openai.AsyncOpenAI(
            base_url=str(server.make_url("/v1")), api_key=APP_KEY, max_retries=0
        )
        clients.append(client)
        return Observed(server, spans, client)

    return start


@pytest.fixture
async def observed(observe: Callable[..., Awaitable[Observed]]) -> AsyncIterator[Observed]:
    result = await observe()
    yield result
    await result.client.close()
