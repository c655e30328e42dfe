"""Costs: exact prices on every answer, usage records committed before the client sees the end,
monthly budgets that concurrent requests cannot overshoot, and the unpriced-model alarm."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from rich.console import Console

from sidecar.server import PIPELINE, RUNTIME
from sidecar.simulator import Simulator
from sidecar.telemetry.render import print_usage
from sidecar.usage_report import by_model
from tests.helpers import APP_KEY, MESSAGES, MakeSidecar, ServerFactory, sdk, webhook_receiver

# The shipped list prices these tests compute by hand (USD per 1M tokens).
MINI_IN, MINI_OUT = Decimal("0.15"), Decimal("0.60")
NO_LIMITS: dict[str, Any] = {"chat": {"rate_limit": None, "fallbacks": []}}


def micros(input_tokens: int, output_tokens: int, price_in: Decimal, price_out: Decimal) -> int:
    """The cost computed by hand: per-1M prices, rounded half-up once to the micro-dollar."""
    usd = (input_tokens * price_in + output_tokens * price_out) / Decimal(1_000_000)
    return int((usd * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def chat(
    server: TestServer, *, user: str = "alice", model: str = "gpt-4o-mini", **body: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi there"}], **body}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.make_url("/v1/chat/completions"),
            json=payload,
            headers={"X-Sidecar-User": user},
        ) as resp,
    ):
        return resp.status, await resp.json(), dict(resp.headers)


async def rows(server: TestServer, user: str) -> list[Any]:
    """What the usage store holds for ``user`` this month, read straight from the database."""
    usage_log = server.app[RUNTIME].usage_log
    await usage_log.flush()  # replies go on once their record is written ahead, before its commit
    store = usage_log.store
    now = datetime.now(UTC)
    return by_model(await store.breakdown(user, now - timedelta(days=40), now + timedelta(days=1)))


async def test_every_answer_carries_its_exact_cost_and_is_recorded(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """X-Sidecar-Cost-USD is the usage at list price to the micro-dollar, and the usage record
    holds the same amount once the answer has arrived (no waiting)."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    status, body, headers = await chat(sidecar)
    assert status == 200
    usage = body["usage"]
    expected = micros(usage["prompt_tokens"], usage["completion_tokens"], MINI_IN, MINI_OUT)
    assert Decimal(headers["X-Sidecar-Cost-USD"]) == Decimal(expected) / Decimal(1_000_000)
    (row,) = await rows(sidecar, "alice")
    assert (row.model, row.requests, row.cost_micros) == ("gpt-4o-mini", 1, expected)
    assert (row.input_tokens, row.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


async def test_a_streamed_answer_is_recorded_before_its_end_reaches_the_client(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """The moment the SDK has read the whole stream, the record with the final chunk's usage is
    in the database: the end is held back until the commit."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    async with openai.AsyncOpenAI(
        base_url=str(sidecar.make_url("/v1")), api_key=APP_KEY, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "count to five"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Sidecar-User": "bob"},
        )
        chunks = [chunk async for chunk in stream]
        (row,) = await rows(sidecar, "bob")  # no wait: it is already committed
    usage = chunks[-1].usage
    assert usage is not None
    assert row.cost_micros == micros(
        usage.prompt_tokens, usage.completion_tokens, MINI_IN, MINI_OUT
    )


async def test_concurrent_requests_never_overshoot_the_monthly_budget(
    upstream: TestServer, make_sidecar: MakeSidecar, aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    """50 concurrent requests against a budget that fits 10 reservations: 10 are answered, 40
    get 429 QUOTA_EXCEEDED, the month's spend stays within the budget, and crossing notify_at
    sends one notification."""
    alerts, receiver = await webhook_receiver(aiohttp_server)
    prices = tmp_path / "prices.yaml"
    prices.write_text("flat-model: {input_per_1m: 1.0, output_per_1m: 1.0}\n")
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        operations=NO_LIMITS,
        pricing_file=str(prices),
        # A request reserves its prompt estimate (a few tokens) + max_tokens (1000) at $1 per 1M:
        # 1,001 to 1,020 micro-dollars, so exactly 10 fit in 10,200.
        budgets={"monthly_usd": 1, "users": {"carol": "0.0102"}, "notify_at": 0.5},
        alerts={"webhook_url": str(receiver.make_url("/hook"))},
    )
    results = await asyncio.gather(
        *(chat(sidecar, user="carol", model="flat-model", max_tokens=1000) for _ in range(50))
    )
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 10
    refused = [body for status, body, _ in results if status == 429]
    assert len(refused) == 40
    assert {body["error"]["code"] for body in refused} == {"QUOTA_EXCEEDED"}
    rt = sidecar.app[RUNTIME]
    costs = sidecar.app[PIPELINE].costs
    month = datetime.now(UTC).strftime("%Y-%m")
    assert await rt.backends.counters.read(costs.budget_key("carol", month)) <= 10_200
    spent = sum(row.cost_micros for row in await rows(sidecar, "carol"))
    assert spent <= 10_200
    await rt.background.drain(5)
    assert [alert["alert"] for alert in alerts] == ["budget_threshold"]
    assert alerts[0]["user"] == "carol"


async def test_an_unpriced_model_is_an_alarm_not_zero(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """A model missing from the price table: no cost header, the record's cost is unknown
    (None, not 0), and sidecar_cost_unpriced_total counts it."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    status, _, headers = await chat(sidecar, user="dora", model="mystery-model")
    assert status == 200
    assert "X-Sidecar-Cost-USD" not in headers
    usage_log = sidecar.app[RUNTIME].usage_log
    await usage_log.flush()
    assert await unknown_costs(usage_log.store, "dora") == 1
    async with aiohttp.ClientSession() as http, http.get(sidecar.make_url("/metrics")) as resp:
        metrics = await resp.text()
    assert any(
        line.startswith("sidecar_cost_unpriced_total") and line.endswith(" 1.0")
        for line in metrics.splitlines()
    )


async def unknown_costs(store: Any, user: str) -> int:
    """Records of ``user`` whose cost is NULL, counted in the database itself."""
    db = store._db
    async with db.execute(
        "SELECT COUNT(*) FROM usage_records WHERE user_id = ? AND cost_micros IS NULL", (user,)
    ) as cursor:
        (count,) = await cursor.fetchone()
    return int(count)


async def test_a_cache_hit_costs_nothing_and_records_what_it_saved(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """The second identical evaluation is a hit: cost 0, and its record keeps the cost saved."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        operations={"evaluation": {"rate_limit": None, "cache_ttl_s": 600}},
    )

    async def evaluate() -> dict[str, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                sidecar.make_url("/v1/chat/completions"),
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "grade"}]},
                headers={"X-Sidecar-User": "eve", "X-Sidecar-Operation": "evaluation"},
            ) as resp,
        ):
            await resp.read()
            return dict(resp.headers)

    first = await evaluate()
    await sidecar.app[RUNTIME].background.drain(5)  # the cache write happens after the reply
    sidecar.app[RUNTIME].background.start()
    second = await evaluate()
    assert (first["X-Sidecar-Cache"], second["X-Sidecar-Cache"]) == ("MISS", "HIT")
    assert Decimal(second["X-Sidecar-Cost-USD"]) == 0
    (row,) = await rows(sidecar, "eve")
    assert row.requests == 2
    assert row.cost_micros == int(Decimal(first["X-Sidecar-Cost-USD"]) * 1_000_000)


async def test_the_usage_report_adds_up_per_model_and_shows_the_budget(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """GET /sidecar/usage: totals and the split by model match the answers' cost headers."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    costs = []
    for model in ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o"):
        _, _, headers = await chat(sidecar, user="fay", model=model)
        costs.append(Decimal(headers["X-Sidecar-Cost-USD"]))
    async with (
        aiohttp.ClientSession() as http,
        http.get(sidecar.make_url("/sidecar/usage?user=fay&period=day")) as resp,
    ):
        report = await resp.json()
    assert Decimal(report["total_cost_usd"]) == sum(costs)
    by_model = {row["model"]: row for row in report["by_model"]}
    assert by_model["gpt-4o-mini"]["requests"] == 2
    assert Decimal(by_model["gpt-4o"]["cost_usd"]) == costs[2]
    assert Decimal(report["budget"]["spent_usd"]) == sum(costs)
    assert Decimal(report["budget"]["monthly_usd"]) == 50


async def usage_report(server: TestServer, user: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url(f"/sidecar/usage?user={user}&period=day")) as resp,
    ):
        assert resp.status == 200
        report: dict[str, Any] = await resp.json()
        return report


async def test_the_report_shows_what_fallbacks_and_retries_cost(
    sim: Simulator, upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """One request retried once (503 then success), one answered by the fallback model after
    the requested one failed for good, one plain: the report counts the retried request and
    its extra upstream call, and the fallback's request and exact cost; failed upstream calls
    cost nothing, so the total is the sum of the three answers' cost headers."""
    chain = {
        "chat": {"rate_limit": None, "fallbacks": ["gpt-4o", "gpt-4o-mini"], "max_attempts": 2}
    }
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=chain)
    sim.script("gpt-4o", [503, 200, 500, 500])
    _, _, retried = await chat(sidecar, user="gus", model="gpt-4o")
    _, _, fell_back = await chat(sidecar, user="gus", model="gpt-4o")
    _, _, plain = await chat(sidecar, user="gus", model="gpt-4o-mini")
    assert fell_back["X-Sidecar-Fallback"] == "gpt-4o->gpt-4o-mini"
    report = await usage_report(sidecar, "gus")
    extra = report["fallbacks_and_retries"]
    assert (extra["fallback_requests"], extra["retried_requests"]) == (1, 2)
    assert extra["extra_upstream_calls"] == 1 + 2  # a retry; two failed calls then the fallback
    assert Decimal(extra["fallback_cost_usd"]) == Decimal(fell_back["X-Sidecar-Cost-USD"])
    assert extra["failed_requests"] == 0
    assert Decimal(extra["failed_cost_usd"]) == 0
    answers = (retried, fell_back, plain)
    assert Decimal(report["total_cost_usd"]) == sum(
        Decimal(headers["X-Sidecar-Cost-USD"]) for headers in answers
    )


async def test_short_answers_on_a_large_model_get_a_cheaper_model_advised(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """Ten chat answers of at most 8 tokens on gpt-4o: the report's advice names the chat
    operation and gpt-4o-mini; the by-operation rows carry the mean output length."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    for _ in range(10):
        await chat(sidecar, user="hal", model="gpt-4o", max_tokens=8)
    report = await usage_report(sidecar, "hal")
    (row,) = report["by_operation"]
    assert (row["operation"], row["model"], row["requests"]) == ("chat", "gpt-4o", 10)
    assert 0 < row["mean_output_tokens"] <= 8
    assert any(
        advice.startswith("chat answers average") and "gpt-4o-mini" in advice
        for advice in report["recommendations"]
    )


# --- budgets settle to what the records hold, and only what was answered is held against them ---

POOR: dict[str, Any] = {"monthly_usd": "0.001"}  # gpt-4o-mini reserves ~$0.000616 by default
POOR_USD = Decimal(POOR["monthly_usd"])


async def sdk_chat(
    client: openai.AsyncOpenAI, user: str, model: str = "gpt-4o-mini", **body: Any
) -> Decimal:
    """One chat call through the real SDK (which raises on a refusal); its cost header."""
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, extra_headers={"X-Sidecar-User": user}, **body
    )
    return Decimal(raw.headers["X-Sidecar-Cost-USD"])


@pytest.mark.parametrize(
    "operations", [NO_LIMITS, {}], ids=["budget-alone", "budget-in-the-rate-limit-round-trip"]
)
async def test_a_client_waiting_for_each_answer_is_never_refused_for_its_own_answered_calls(
    upstream: TestServer,
    make_sidecar: MakeSidecar,
    shared_state: dict[str, Any],
    operations: dict[str, Any],
) -> None:
    """A $0.001 budget; each call reserves ~$0.000616 (1024 tokens assumed) and costs at most
    ~$0.000122: three calls one after the other are all answered, although each comes before
    the previous one's reservation is settled in the background; the month then holds exactly
    their cost."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")), operations=operations, budgets=POOR, **shared_state
    )
    async with sdk(sidecar) as client:  # one client: the calls follow each other closely
        costs = [await sdk_chat(client, "poor3") for _ in range(3)]
    report = await usage_report(sidecar, "poor3")
    assert Decimal(report["budget"]["spent_usd"]) == sum(costs) == Decimal(report["total_cost_usd"])


async def test_a_refusal_says_whether_the_budget_is_used_up_or_the_estimate_too_large(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """Nothing spent yet but an estimate over the budget: the message says the estimate would
    exceed what is left; a budget of 0 is used up."""
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        operations=NO_LIMITS,
        budgets={**POOR, "users": {"broke": 0}},
    )
    async with sdk(sidecar) as client:
        with pytest.raises(openai.RateLimitError) as too_large:
            await sdk_chat(client, "poor4", max_tokens=2000)
        with pytest.raises(openai.RateLimitError) as used_up:
            await sdk_chat(client, "broke")
    errors = [caught.value.body for caught in (too_large, used_up)]
    assert all(isinstance(error, dict) for error in errors)
    refusals: list[dict[str, Any]] = [error for error in errors if isinstance(error, dict)]
    for error in refusals:
        assert (error["code"], error["reason"]) == ("QUOTA_EXCEEDED", "budget_exceeded")
    message = refusals[0]["message"]
    assert message.startswith("This request's estimated cost of up to $0.0012")
    assert "would exceed the $0.001 left of this user's monthly budget of $0.001" in message
    assert "used up" not in message
    assert "Monthly budget of $0 for this user is used up" in refusals[1]["message"]


async def test_notify_at_fires_once_when_settled_spend_crosses_it_not_on_a_reservation(
    upstream: TestServer, make_sidecar: MakeSidecar, aiohttp_server: ServerFactory
) -> None:
    """notify_at 0.5 of $0.001: the first call reserves $0.000616 but costs far less, so no
    notification yet; calls of ~$0.00006 follow until their summed cost reaches $0.0005, and
    exactly one notification says a spend that is a sum of the answers' costs."""
    alerts, receiver = await webhook_receiver(aiohttp_server)
    sidecar = await make_sidecar(
        str(upstream.make_url("/v1")),
        operations=NO_LIMITS,
        budgets={**POOR, "notify_at": 0.5},
        alerts={"webhook_url": str(receiver.make_url("/hook"))},
    )
    async with sdk(sidecar) as client:
        spent = [await sdk_chat(client, "nora")]
        while spent[-1] < Decimal("0.0005"):
            spent.append(spent[-1] + await sdk_chat(client, "nora", max_tokens=100))
    await sidecar.app[PIPELINE].costs.corrections.flush()
    await sidecar.app[RUNTIME].background.drain(5)  # the webhook is posted in the background
    assert len(alerts) == 1
    (alert,) = alerts
    assert (alert["alert"], alert["user"]) == ("budget_threshold", "nora")
    assert Decimal(alert["spent_usd"]) in spent
    assert Decimal(alert["spent_usd"]) >= Decimal("0.0005")
    assert alert["utilization"] == round(float(Decimal(alert["spent_usd"]) / POOR_USD), 4)


async def test_an_answer_without_usage_is_priced_from_its_tokens_in_record_and_budget(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """POST /v1/completions answered without usage: its cost is estimated from the counted
    tokens, and the usage report's total and the budget's spend are that same amount."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    async with sdk(sidecar) as client:
        raw = await client.completions.with_raw_response.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hello to the new user",
            max_tokens=5,
            extra_headers={"X-Sidecar-User": "ida"},
        )
    cost = Decimal(raw.headers["X-Sidecar-Cost-USD"])
    report = await usage_report(sidecar, "ida")
    assert cost > 0
    assert Decimal(report["total_cost_usd"]) == Decimal(report["budget"]["spent_usd"]) == cost
    assert report["unpriced_requests"] == 0


async def test_a_failed_call_costs_nothing_and_gives_its_reservation_back(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """Every attempt answered 503: the record's cost is $0 (not unknown) and the budget holds
    nothing of the reservation."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    with pytest.raises(openai.InternalServerError):
        async with sdk(sidecar) as client:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                extra_headers={"X-Sidecar-User": "jon", "X-Mock-Outcome": "503"},
            )
    report = await usage_report(sidecar, "jon")
    assert (report["requests"], report["unpriced_requests"]) == (1, 0)
    assert Decimal(report["total_cost_usd"]) == Decimal(report["budget"]["spent_usd"]) == 0
    assert report["fallbacks_and_retries"]["failed_requests"] == 1


async def test_an_unpriced_models_cost_is_shown_unknown_never_zero(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """GET /sidecar/usage gives an unpriced model's cost as null with its unpriced request
    count; the total is the priced requests' cost, and `llm-sidecar usage` prints "unknown"
    and how many requests have an unknown cost."""
    sidecar = await make_sidecar(str(upstream.make_url("/v1")), operations=NO_LIMITS)
    async with sdk(sidecar) as client:
        await client.chat.completions.create(
            model="no-such-model", messages=MESSAGES, extra_headers={"X-Sidecar-User": "kim"}
        )
        priced = await sdk_chat(client, "kim")
    report = await usage_report(sidecar, "kim")
    rows = {row["model"]: row for row in report["by_model"]}
    assert (rows["no-such-model"]["cost_usd"], rows["no-such-model"]["unpriced_requests"]) == (
        None,
        1,
    )
    assert Decimal(rows["gpt-4o-mini"]["cost_usd"]) == priced
    assert rows["gpt-4o-mini"]["unpriced_requests"] == 0
    operation = next(row for row in report["by_operation"] if row["model"] == "no-such-model")
    assert operation["cost_usd"] is None
    assert (Decimal(report["total_cost_usd"]), report["unpriced_requests"]) == (priced, 1)
    printed = io.StringIO()
    print_usage(report, Console(file=printed, width=120))
    lines = printed.getvalue().splitlines()
    by_model_row, by_operation_row = [line for line in lines if "no-such-model" in line]
    assert "unknown" in by_model_row
    assert "0.000000" not in by_model_row
    assert "unknown" in by_operation_row
    assert any(f"${report['total_cost_usd']} + 1 unknown" in line for line in lines)
