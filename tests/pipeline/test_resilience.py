"""Retries, deadlines, fallbacks and breakers: simulator faults in, openai SDK out."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from sidecar.server import RUNTIME
from sidecar.simulator import Faults, Simulator, SimulatorConfig
from tests.helpers import APP_KEY, MESSAGES, MakeSidecar, ServerFactory, Sleeps, sdk, sim_provider

NO_FALLBACKS: dict[str, dict[str, Any]] = {"chat": {"fallbacks": []}}


async def backup_provider(aiohttp_server: ServerFactory) -> tuple[Simulator, str]:
    """A second simulated provider: the simulator and its base URL."""
    backup = Simulator(SimulatorConfig(seed=3))
    server = await aiohttp_server(backup.app())
    return backup, str(server.make_url("/v1"))


def two_providers(url: str, backup_url: str) -> dict[str, Any]:
    """The simulator as the default provider "sim", and a "backup" provider without a key."""
    return {"sim": sim_provider(url), "backup": {"base_url": backup_url, "api_key_env": None}}


def calls(sim: Simulator, model: str | None = None) -> list[str]:
    """The models of the model calls the simulator saw (readiness probes are not counted)."""
    return [
        seen.model
        for seen in sim.seen
        if seen.model is not None and (model is None or seen.model == model)
    ]


async def chat(server: TestServer, model: str = "gpt-4o", **kwargs: Any) -> Any:
    async with sdk(server) as client:
        return await client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, **kwargs
        )


@pytest.fixture
async def url(upstream: TestServer) -> str:
    return str(upstream.make_url("/v1"))


@pytest.mark.parametrize(
    ("outcome", "status", "code", "upstream_calls"),
    [
        (429, 429, "RATE_LIMIT", 3),
        ("quota", 429, "QUOTA_EXCEEDED", 1),
        ("tpm", 429, "RATE_LIMIT", 1),
        ("context", 400, "CONTEXT_LENGTH", 1),
        (400, 400, "INVALID_INPUT", 1),
        (401, 503, "MODEL_UNAVAILABLE", 1),
        (403, 503, "MODEL_UNAVAILABLE", 1),
        (404, 503, "MODEL_UNAVAILABLE", 1),
        (408, 504, "TIMEOUT", 3),
        (409, 503, "MODEL_UNAVAILABLE", 3),
        (500, 503, "MODEL_UNAVAILABLE", 3),
        (502, 503, "MODEL_UNAVAILABLE", 3),
        (503, 503, "MODEL_UNAVAILABLE", 3),
        (504, 504, "TIMEOUT", 3),
        ("garbage", 502, "NETWORK", 3),
        ("reset", 502, "NETWORK", 3),
    ],
)
async def test_classification_table_end_to_end(
    sim: Simulator,
    url: str,
    make_sidecar: MakeSidecar,
    outcome: int | str,
    status: int,
    code: str,
    upstream_calls: int,
) -> None:
    """Each upstream failure maps to its code and status, retried only when retrying can help;
    after the sidecar's own retries the SDK is told not to retry on top (x-should-retry)."""
    sim.script("gpt-4o", [outcome] * 3)
    server = await make_sidecar(url, operations=NO_FALLBACKS)
    with pytest.raises(openai.APIStatusError) as caught:
        await chat(server)
    error = caught.value.response.json()["error"]
    assert (caught.value.status_code, error["code"]) == (status, code)
    assert len(calls(sim)) == upstream_calls
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert error["retry"] is (upstream_calls > 1)  # the app may still try again later


async def test_a_transient_failure_is_invisible_to_the_client(
    sim: Simulator, url: str, make_sidecar: MakeSidecar, sleeps: Sleeps
) -> None:
    """503 then success: the app gets its answer; the retry waited a full-jitter backoff."""
    sim.script("gpt-4o", [503, 200])
    server = await make_sidecar(url, operations=NO_FALLBACKS)
    raw = await chat(server)
    assert raw.parse().choices[0].message.content
    assert len(calls(sim)) == 2
    (delay,) = sleeps.delays
    assert 0 <= delay < 0.25  # base 0.25 s, first retry: uniform in [0, 0.25)


async def test_retry_after_is_honoured(
    sim: Simulator, url: str, make_sidecar: MakeSidecar, sleeps: Sleeps
) -> None:
    """A 429's retry-after-ms hint is the wait chosen before the retry."""
    sim.config.faults = Faults(retry_after_s=1.5)
    sim.script("gpt-4o", [429, 200])
    server = await make_sidecar(url, operations=NO_FALLBACKS)
    await chat(server)
    assert sleeps.delays == [1.5]


async def test_retry_after_is_honoured_in_real_time(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """With real sleeps, the retry reaches the upstream no sooner than Retry-After allows, and
    X-Sidecar-Overhead-Ms excludes that wait (it is upstream time, not sidecar overhead)."""
    sim.config.faults = Faults(retry_after_s=0.3)
    sim.script("gpt-4o", [429, 200])
    server = await make_sidecar(url, operations=NO_FALLBACKS, real_sleep=True)
    raw = await chat(server)
    first, second = sim.seen[-2], sim.seen[-1]
    assert 0.3 <= second.t - first.t < 1.0
    assert float(raw.headers["x-sidecar-overhead-ms"]) < 100


async def test_a_retry_hint_past_the_deadline_falls_back_instead_of_waiting(
    sim: Simulator, url: str, make_sidecar: MakeSidecar, sleeps: Sleeps
) -> None:
    """When waiting out Retry-After would pass the deadline, the next model is tried at once."""
    sim.config.faults = Faults(retry_after_s=30)
    sim.script("gpt-4o", [429])
    server = await make_sidecar(
        url, operations={"chat": {"deadline_s": 5, "allow_pricier_fallbacks": True}}
    )
    raw = await chat(server)
    assert raw.headers["x-sidecar-fallback"] == "gpt-4o->gpt-4"
    assert sleeps.delays == []


async def test_one_deadline_covers_every_attempt_and_fallback(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """A hanging upstream gets 504 TIMEOUT at the deadline, not after the attempts' own
    timeouts: each attempt alone would wait 60 s (the provider's ``timeout_s``), and there are
    retries and fallbacks to go. The upper bound leaves a second for a loaded machine (a 0.4 s
    margin failed once under CI load): anything near it still proves the deadline cut in."""
    server = await make_sidecar(url, operations={"chat": {"deadline_s": 0.6}})
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(server, extra_headers={"X-Mock-Outcome": "timeout"})
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 504
    assert caught.value.response.json()["error"]["code"] == "TIMEOUT"
    assert 0.6 <= elapsed < 0.6 + 1.0


async def test_fallback_chain_order_is_what_the_upstream_sees(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """gpt-4o fails, then gpt-4: gpt-3.5-turbo answers, and the client is told so."""
    sim.script("gpt-4o", [503] * 3)
    sim.script("gpt-4", [503] * 3)
    server = await make_sidecar(
        url,
        resilience={"max_calls": 10},
        operations={"chat": {"allow_pricier_fallbacks": True}},
    )
    raw = await chat(server)
    assert calls(sim) == ["gpt-4o"] * 3 + ["gpt-4"] * 3 + ["gpt-3.5-turbo"]
    assert raw.headers["x-sidecar-fallback"] == "gpt-4o->gpt-3.5-turbo"
    assert raw.headers["x-sidecar-model"] == "gpt-3.5-turbo"


async def test_no_fallback_on_invalid_input(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """A request the upstream rejects as invalid is not sent to other models."""
    sim.script("gpt-4o", [400])
    server = await make_sidecar(url)
    with pytest.raises(openai.BadRequestError):
        await chat(server)
    assert calls(sim) == ["gpt-4o"]


async def test_image_fallback_rewrites_model_and_quality(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """dall-e-3 hd → dall-e-3 standard → dall-e-2 standard, rewriting the request each time."""
    sim.script("dall-e-3", [503, 503, 503, 503])
    server = await make_sidecar(url, resilience={"max_calls": 10})
    async with sdk(server) as client:
        raw = await client.images.with_raw_response.generate(
            model="dall-e-3", prompt="a lighthouse", quality="hd"
        )
    sent = [(s.model, (s.body or {}).get("quality")) for s in sim.seen]
    assert sent == [("dall-e-3", "hd")] * 2 + [("dall-e-3", "standard")] * 2 + [
        ("dall-e-2", "standard")
    ]
    assert raw.headers["x-sidecar-fallback"] == "dall-e-3->dall-e-2:standard"


async def test_fallback_may_cross_providers(
    sim: Simulator, url: str, make_sidecar: MakeSidecar, aiohttp_server: ServerFactory
) -> None:
    """A chain entry 'provider/model' moves the request to another provider."""
    backup, backup_url = await backup_provider(aiohttp_server)
    sim.script("gpt-4o", [503] * 3)
    server = await make_sidecar(
        url,
        providers=two_providers(url, backup_url),
        operations={"chat": {"fallbacks": ["gpt-4o", "backup/llama3"]}},
    )
    raw = await chat(server)
    assert calls(backup) == ["llama3"]
    assert raw.headers["x-sidecar-fallback"] == "gpt-4o->backup/llama3"
    assert raw.headers["x-sidecar-model"] == "llama3"


async def test_breaker_opens_short_circuits_and_recovers(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """After the threshold the model is skipped without an upstream call; a probe closes it."""
    server = await make_sidecar(
        url,
        operations={"chat": {"fallbacks": [], "max_attempts": 1}},
        resilience={"breaker": {"consecutive_failures": 3, "open_s": 30}},
    )
    clock = FakeClock()
    server.app[RUNTIME].breakers.clock = clock
    sim.script("gpt-4o", [503] * 3)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            await chat(server)
    assert len(calls(sim)) == 3
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(server)
    assert len(calls(sim)) == 3  # short-circuited: the upstream was not called
    assert "circuit is open" in caught.value.response.json()["error"]["message"]
    assert int(caught.value.response.headers["retry-after"]) == 30
    assert await readiness(server) == "unhealthy"  # the only route the sidecar knows is open

    clock.now += 30.5  # the open period is over: the next call is a probe, and it succeeds
    raw = await chat(server)
    assert raw.parse().choices
    assert len(calls(sim)) == 4
    assert await readiness(server) == "healthy"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


async def readiness(server: TestServer) -> str:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/readyz")) as resp:
        return str((await resp.json())["status"])


async def test_retry_budget_caps_retries_under_a_failure_burst(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """With every call failing, upstream calls stay near 1.2 per request, not 3."""
    sim.config.faults = Faults(rate_503=1.0)
    server = await make_sidecar(
        url,
        operations={"chat": {"fallbacks": [], "rate_limit": None}},  # 60 requests from one user
        resilience={"breaker": {"consecutive_failures": 10_000, "min_calls": 10_000}},
    )
    requests = 60
    async with sdk(server) as client:
        for _ in range(requests):
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(calls(sim)) <= requests * 1.2 + 3
    assert len(calls(sim)) > requests  # some retries were still allowed


async def test_no_retry_once_a_stream_has_started(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """An upstream reset mid-stream ends the stream with an error event; it is not retried."""
    sim.script("gpt-4o", ["reset"])
    server = await make_sidecar(url, operations=NO_FALLBACKS)
    async with sdk(server) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    assert len(calls(sim)) == 1


async def test_bad_credentials_rest_the_provider(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """After a 401 the provider rests: the next request fails fast without an upstream call."""
    sim.script("gpt-4o", [401])
    server = await make_sidecar(url, operations=NO_FALLBACKS)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await chat(server)
    assert len(calls(sim)) == 1


async def test_a_resting_provider_says_why_and_when_it_is_tried_again(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """While a provider rests after refusing our key, the error names the cause (not an open
    circuit "for another 0.0 s") and Retry-After says when it is tried again; /readyz is 503."""
    sim.script("gpt-4o", [401])
    server = await make_sidecar(url, operations=NO_FALLBACKS)
    with pytest.raises(openai.InternalServerError):
        await chat(server)
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(server)
    error = caught.value.response.json()["error"]
    assert "rejected the sidecar's credentials" in error["message"]
    assert 0 < error["retry_after_s"] <= 300
    assert int(caught.value.response.headers["Retry-After"]) > 0
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/readyz")) as ready:
        assert ready.status == 503
        assert "credentials" in (await ready.json())["services"]["upstream"]["message"]


async def test_a_403_on_one_model_does_not_shut_the_provider(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """A model the key may not use (403) fails that request; the provider's other models, and
    the same model on the next request, are still called."""
    sim.script("gpt-4o", [403])
    server = await make_sidecar(url, operations=NO_FALLBACKS)
    with pytest.raises(openai.InternalServerError):
        await chat(server)
    assert (await chat(server, model="gpt-4o-mini")).http_response.status_code == 200
    assert (await chat(server)).http_response.status_code == 200
    assert calls(sim) == ["gpt-4o", "gpt-4o-mini", "gpt-4o"]


async def test_the_apps_own_key_refused_is_the_apps_401_and_rests_nothing(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """With forward_client_key, a 401 or 403 is about the key the app sent: that app gets 401
    UNAUTHORIZED, with no fallback, and other apps' requests still reach the provider."""
    byok = {"base_url": url, "api_key_env": None, "forward_client_key": True}
    server = await make_sidecar(url, providers={"byok": byok})
    for status in (401, 403):
        sim.script("gpt-4o", [status])
        with pytest.raises(openai.AuthenticationError) as caught:
            await chat(server)
        error = caught.value.response.json()["error"]
        assert error["code"] == "UNAUTHORIZED"
        assert "the app sent" in error["message"]
        assert APP_KEY not in caught.value.response.text
    assert (await chat(server)).http_response.status_code == 200
    assert calls(sim) == ["gpt-4o"] * 3


async def test_a_model_outside_every_chain_is_retried_never_replaced(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """gpt-4o-mini is in no chain: with the stock chat chain it is retried, never answered by
    gpt-4 (which costs more), and no fallback is reported."""
    sim.script("gpt-4o-mini", [503] * 3)
    server = await make_sidecar(url)
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(server, model="gpt-4o-mini")
    assert calls(sim) == ["gpt-4o-mini"] * 3
    assert "x-sidecar-fallback" not in caught.value.response.headers


async def test_upstream_calls_per_request_are_bounded(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """Every model down: one request makes resilience.max_calls upstream calls, not 4 x 3."""
    sim.config.faults = Faults(rate_503=1.0)
    server = await make_sidecar(url, resilience={"max_calls": 4})
    with pytest.raises(openai.InternalServerError):
        await chat(server)
    assert len(calls(sim)) == 4


async def test_the_sdk_does_not_multiply_the_sidecars_retries(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """With the openai SDK's default retries on, one create() costs max_calls upstream calls:
    the final error says x-should-retry: false, so the SDK does not start over (was 15)."""
    sim.config.faults = Faults(rate_503=1.0)
    server = await make_sidecar(url)
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key=APP_KEY, max_retries=2
    ) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(calls(sim)) == 4


async def test_an_account_failure_skips_the_providers_other_models(
    sim: Simulator, url: str, make_sidecar: MakeSidecar, aiohttp_server: ServerFactory
) -> None:
    """insufficient_quota on gpt-4o: gpt-4 on the same account cannot help and is skipped;
    the backup provider's model is tried and answers."""
    backup, backup_url = await backup_provider(aiohttp_server)
    sim.script("gpt-4o", ["quota"])
    server = await make_sidecar(
        url,
        providers=two_providers(url, backup_url),
        operations={"chat": {"fallbacks": ["gpt-4o", "gpt-4", "backup/llama3"]}},
    )
    raw = await chat(server)
    assert calls(sim) == ["gpt-4o"]
    assert calls(backup) == ["llama3"]
    assert raw.headers["x-sidecar-fallback"] == "gpt-4o->backup/llama3"


async def test_a_prefixed_chain_entry_is_the_same_link_as_the_bare_model(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """A request for sim/gpt-4o in the chain [sim/gpt-4o, gpt-4] falls back to gpt-4 and never
    calls the model that just failed again."""
    sim.script("gpt-4o", [503] * 3)
    chain = {"fallbacks": ["sim/gpt-4o", "gpt-4"], "allow_pricier_fallbacks": True}
    server = await make_sidecar(url, operations={"chat": chain})
    raw = await chat(server, model="sim/gpt-4o")
    assert calls(sim) == ["gpt-4o"] * 3 + ["gpt-4"]
    assert raw.headers["x-sidecar-fallback"] == "sim/gpt-4o->gpt-4"


async def test_the_breaker_that_records_a_fallbacks_failures_is_the_one_consulted(
    sim: Simulator, url: str, make_sidecar: MakeSidecar, aiohttp_server: ServerFactory
) -> None:
    """backup/llama3 trips its breaker after two failures, so it is not tried a third time."""
    backup, backup_url = await backup_provider(aiohttp_server)
    sim.script("gpt-4o", [503] * 3)
    backup.script("llama3", [503] * 3)
    server = await make_sidecar(
        url,
        providers=two_providers(url, backup_url),
        operations={"chat": {"fallbacks": ["gpt-4o", "backup/llama3"]}},
        resilience={"max_calls": 10, "breaker": {"consecutive_failures": 2}},
    )
    with pytest.raises(openai.InternalServerError):
        await chat(server)
    assert calls(backup) == ["llama3", "llama3"]
    assert server.app[RUNTIME].breakers.get("backup", "llama3").state.name == "OPEN"


async def test_fallbacks_stay_on_the_provider_the_client_pinned(
    sim: Simulator, url: str, make_sidecar: MakeSidecar, aiohttp_server: ServerFactory
) -> None:
    """X-Sidecar-Provider: backup — when gpt-4o fails there, gpt-4 is tried there too."""
    backup, backup_url = await backup_provider(aiohttp_server)
    backup.script("gpt-4o", [503] * 3)
    server = await make_sidecar(
        url,
        providers=two_providers(url, backup_url),
        operations={"chat": {"allow_pricier_fallbacks": True}},
    )
    raw = await chat(server, extra_headers={"X-Sidecar-Provider": "backup"})
    assert calls(backup) == ["gpt-4o"] * 3 + ["gpt-4"]
    assert calls(sim) == []
    assert raw.headers["x-sidecar-model"] == "gpt-4"


async def test_no_fallback_header_when_no_fallback_answered(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """Every model of the chain failed: the 503 does not claim a fallback answered."""
    sim.config.faults = Faults(rate_503=1.0)
    server = await make_sidecar(url)
    with pytest.raises(openai.InternalServerError) as caught:
        await chat(server)
    assert "x-sidecar-fallback" not in caught.value.response.headers


async def test_a_fallback_priced_above_the_requested_model_is_skipped(
    sim: Simulator, url: str, make_sidecar: MakeSidecar
) -> None:
    """Stock chain gpt-4o → gpt-4 → gpt-3.5-turbo: gpt-4 costs more than gpt-4o, so without
    allow_pricier_fallbacks the request falls back to gpt-3.5-turbo directly."""
    sim.script("gpt-4o", [503] * 3)
    server = await make_sidecar(url)
    raw = await chat(server)
    assert calls(sim) == ["gpt-4o"] * 3 + ["gpt-3.5-turbo"]
    assert raw.headers["x-sidecar-fallback"] == "gpt-4o->gpt-3.5-turbo"
