"""What reaches the provider: an allow list of headers, the provider's key and never the app's."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar.config import ConfigError
from sidecar.runtime import Overrides, Runtime
from sidecar.server import create_app
from sidecar.simulator import Simulator
from sidecar.telemetry.setup import OtelProviders
from tests.helpers import APP_KEY, PROVIDER_KEY, MakeSidecar, ServerFactory, sidecar_settings

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
CLIENT_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def post(server: TestServer, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url("/v1/chat/completions"), json=BODY, headers=headers) as resp,
    ):
        await resp.read()
        return resp.status


async def test_credentials_cookies_billing_and_hop_by_hop_headers_stay_behind(
    sidecar: TestServer, sim: Simulator
) -> None:
    """Cookie, OpenAI-Organization/-Project, X-Sidecar-*, and headers named in Connection are
    not forwarded; the standard ones are, and the app's key is replaced by the provider's."""
    status = await post(
        sidecar,
        {
            "Authorization": f"Bearer {APP_KEY}",
            "Cookie": "session=abc",
            "OpenAI-Organization": "org-app-chooses",
            "OpenAI-Project": "proj-app-chooses",
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "secret",
            "X-Sidecar-User": "alice",
            "X-Custom": "not on the list",
            "OpenAI-Beta": "assistants=v2",
            "X-Stainless-Lang": "python",
        },
    )
    assert status == 200
    seen = sim.seen[-1].headers
    for dropped in ("cookie", "openai-organization", "openai-project", "x-private-hop"):
        assert dropped not in seen
    assert "x-sidecar-user" not in seen
    assert "x-custom" not in seen
    assert (seen["openai-beta"], seen["x-stainless-lang"]) == ("assistants=v2", "python")
    assert seen["authorization"] == f"Bearer {PROVIDER_KEY}"


class TraceRecorder:
    """An upstream that keeps every traceparent header it got, duplicates included."""

    def __init__(self) -> None:
        self.traceparents: list[list[str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.traceparents.append(request.headers.getall("traceparent", []))
        return web.json_response({"id": "c", "object": "chat.completion", "choices": []})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app


@pytest.mark.parametrize("tracing", [False, True])
async def test_the_provider_gets_exactly_one_traceparent(
    tracing: bool, aiohttp_server: ServerFactory, provider_key: str
) -> None:
    """The app's traceparent (in any case) is replaced by ours when we trace, kept otherwise."""
    recorder = TraceRecorder()
    upstream = await aiohttp_server(recorder.app())
    otel = OtelProviders(otlp=False, span_exporter=InMemorySpanExporter() if tracing else None)
    settings = sidecar_settings(str(upstream.make_url("/v1")))
    sidecar = await aiohttp_server(create_app(settings, Overrides(otel=otel)))
    assert await post(sidecar, {"TraceParent": CLIENT_TRACEPARENT}) == 200
    (received,) = recorder.traceparents
    assert len(received) == 1
    same_trace = received[0].split("-")[1] == CLIENT_TRACEPARENT.split("-")[1]
    assert same_trace
    assert (received[0] == CLIENT_TRACEPARENT) is not tracing  # ours has our span as parent


async def test_a_provider_without_a_key_never_gets_the_apps_key(
    upstream: TestServer, make_sidecar: MakeSidecar, sim: Simulator
) -> None:
    """api_key_env: null means no Authorization at all, not the app's own."""
    url = str(upstream.make_url("/v1"))
    sidecar = await make_sidecar(url, providers={"local": {"base_url": url, "api_key_env": None}})
    assert await post(sidecar, {"Authorization": f"Bearer {APP_KEY}"}) == 200
    assert "authorization" not in sim.seen[-1].headers


async def test_forwarding_the_apps_key_is_an_explicit_choice(
    upstream: TestServer, make_sidecar: MakeSidecar, sim: Simulator
) -> None:
    """forward_client_key: true passes the app's Authorization through unchanged."""
    url = str(upstream.make_url("/v1"))
    provider = {"base_url": url, "api_key_env": None, "forward_client_key": True}
    sidecar = await make_sidecar(url, providers={"byok": provider})
    assert await post(sidecar, {"Authorization": f"Bearer {APP_KEY}"}) == 200
    assert sim.seen[-1].headers["authorization"] == f"Bearer {APP_KEY}"


async def test_a_missing_provider_key_stops_start_up_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key variable that is unset or empty is a configuration error, not a silent fallback."""
    monkeypatch.setenv("SIDECAR_TEST_KEY", "")
    with pytest.raises(ConfigError, match="SIDECAR_TEST_KEY is not set"):
        await Runtime.open(sidecar_settings("http://127.0.0.1:9/v1"))


def test_forwarding_a_credential_header_is_refused_in_config() -> None:
    """forward_headers cannot be used to pass credentials along."""
    with pytest.raises(ConfigError, match="carries credentials"):
        sidecar_settings(
            "http://127.0.0.1:9/v1",
            providers={"p": {"base_url": "http://x/v1", "forward_headers": ["Cookie"]}},
        )
