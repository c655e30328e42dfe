"""Priority admission through the real sidecar: the simulator over HTTP, the openai SDK in front.

The simulator is put behind a hold: every request it gets waits until the test opens it. With
one slot on the provider, the first request holds that slot at the simulator while the others
queue in the sidecar; once opened, they reach the simulator one by one, in the order the
sidecar admitted them. The tests wait on the gate's own change notifications, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from sidecar.admission import AGING_GRANTS, Gate, Gates
from sidecar.config import Priority
from sidecar.pipeline.admission import Admission
from sidecar.runtime import Overrides
from sidecar.server import PIPELINE, RUNTIME, create_app
from sidecar.simulator import Simulator, SimulatorConfig
from sidecar.telemetry import names as n
from sidecar.telemetry.setup import OtelProviders
from sidecar.upstream.breaker import State
from tests.helpers import (
    MakeSidecar,
    ServerFactory,
    Sleeps,
    sdk,
    sidecar_settings,
    sim_provider,
)

MODEL = "gpt-4o-mini"  # in no seed fallback chain: retried, never answered by another model
# No rate limit or cache in the way; evaluation defaults to batch priority.
OPERATIONS: dict[str, Any] = {
    "chat": {"rate_limit": None, "fallbacks": []},
    "evaluation": {"rate_limit": None, "cache_ttl_s": 0, "priority": "batch"},
}


class Hold:
    """Holds every request to the simulator until opened, and announces each arrival."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.arrived = 0
        self._next: asyncio.Future[None] | None = None

    def install(self, app: web.Application) -> None:
        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            self.arrived += 1
            if self._next is not None and not self._next.done():
                self._next.set_result(None)
            await self.opened.wait()
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(hold)

    async def next_arrival(self) -> None:
        """The next request to reach the simulator (call it before that request is sent)."""
        self._next = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self._next, 10)


@pytest.fixture
def hold() -> Hold:
    return Hold()


@pytest.fixture
async def url(sim: Simulator, hold: Hold, aiohttp_server: ServerFactory) -> str:
    app = sim.app()
    hold.install(app)
    return str((await aiohttp_server(app)).make_url("/v1"))


@pytest.fixture
def start(url: str, make_sidecar: MakeSidecar) -> Callable[..., Awaitable[TestServer]]:
    """A sidecar in front of the held simulator, with ``slots`` on it (config overrides)."""

    async def go(slots: int = 1, **overrides: Any) -> TestServer:
        settings: dict[str, Any] = {
            "providers": {"sim": sim_provider(url, max_concurrency=slots)},
            "operations": OPERATIONS,
            **overrides,
        }
        return await make_sidecar(url, **settings)

    return go


def gates_of(server: TestServer) -> Gates:
    """The admission stage's gates, found in the composed pipeline."""
    handler: Any = server.app[PIPELINE].handle
    while isinstance(handler, functools.partial):
        if isinstance(handler.func, Admission):
            return handler.func.gates
        handler = handler.keywords["call_next"]
    raise AssertionError("no admission stage in the pipeline")


async def until(gate: Gate, condition: Callable[[], bool]) -> None:
    """Wait for the gate to reach a state, woken by its own changes."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.wait_for(gate.changed(), 10)
    raise AssertionError("the gate never got there")


async def ask(
    client: openai.AsyncOpenAI,
    tag: str,
    *,
    priority: Priority | None = None,
    user: str = "u",
    operation: str | None = None,
    model: str = MODEL,
) -> Any:
    headers = {"X-Sidecar-User": user}
    if priority is not None:
        headers["X-Sidecar-Priority"] = priority
    if operation is not None:
        headers["X-Sidecar-Operation"] = operation
    return await client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": tag}], extra_headers=headers
    )


def upstream_order(sim: Simulator) -> list[str]:
    """The tags of the model calls in the order the simulator got them."""
    return [
        seen.body["messages"][0]["content"]
        for seen in sim.seen
        if seen.body is not None and "messages" in seen.body
    ]


class Saturated:
    """One slot, held by a first request at the simulator; others queue behind it."""

    def __init__(self, client: openai.AsyncOpenAI, gate: Gate, hold: Hold) -> None:
        self.client, self.gate, self.hold = client, gate, hold
        self.tasks: list[asyncio.Task[Any]] = []

    async def fill(self) -> None:
        self.tasks.append(asyncio.create_task(ask(self.client, "first", user="holder")))
        await self.hold.next_arrival()

    async def enqueue(self, tag: str, **kwargs: Any) -> None:
        """Send a request and wait until it is queued (so the queue order is the send order)."""
        waiting = self.gate.waiting
        self.tasks.append(asyncio.create_task(ask(self.client, tag, **kwargs)))
        await until(self.gate, lambda: self.gate.waiting == waiting + 1)

    async def drain(self) -> None:
        self.hold.opened.set()
        await asyncio.gather(*self.tasks)
        await until(self.gate, lambda: self.gate.in_flight == 0)


@contextlib.asynccontextmanager
async def saturated(
    start: Callable[..., Awaitable[TestServer]], hold: Hold
) -> AsyncIterator[Saturated]:
    """A sidecar whose one slot is taken (``fill``); the requests queued inside the block are
    let through in turn when it ends (``drain``)."""
    server = await start()
    gate = gates_of(server)["sim"]
    async with sdk(server) as client:
        line = Saturated(client, gate, hold)
        await line.fill()
        yield line
        await line.drain()


async def test_higher_priorities_reach_the_upstream_first(
    start: Callable[..., Awaitable[TestServer]], sim: Simulator, hold: Hold
) -> None:
    """Under saturation, queued requests are sent high first, then normal, then batch."""
    async with saturated(start, hold) as line:
        for tag, priority in [("b1", "batch"), ("n1", "normal"), ("h1", "high"), ("n2", "normal")]:
            await line.enqueue(tag, priority=priority, user=tag)
        await line.enqueue("h2", priority="high", user="h2")
        assert [line.gate.depth(p) for p in ("high", "normal", "batch")] == [2, 2, 1]
    assert upstream_order(sim) == ["first", "h1", "h2", "n1", "n2", "b1"]


async def test_batch_still_progresses_behind_high_priority(
    start: Callable[..., Awaitable[TestServer]], sim: Simulator, hold: Hold
) -> None:
    """Aging: a batch request queued before a stream of high ones is not left for last."""
    async with saturated(start, hold) as line:
        await line.enqueue("batch", priority="batch")
        highs = AGING_GRANTS + 3
        for i in range(highs):
            await line.enqueue(f"high{i}", priority="high", user=f"user{i}")
    order = upstream_order(sim)
    assert order.index("batch") == 1 + AGING_GRANTS  # after "first" and AGING_GRANTS highs
    assert len(order) == 2 + highs


async def test_users_take_turns_within_a_priority(
    start: Callable[..., Awaitable[TestServer]], sim: Simulator, hold: Hold
) -> None:
    """One user's burst does not make another user of the same priority wait behind it all."""
    async with saturated(start, hold) as line:
        for i in range(4):
            await line.enqueue(f"alice{i}", user="alice")
        await line.enqueue("bob0", user="bob")
    assert upstream_order(sim) == ["first", "alice0", "bob0", "alice1", "alice2", "alice3"]


async def test_priority_header_overrides_the_operation_default(
    start: Callable[..., Awaitable[TestServer]], sim: Simulator, hold: Hold
) -> None:
    """X-Sidecar-Priority wins; without it the operation's priority applies, else normal."""
    async with saturated(start, hold) as line:
        await line.enqueue("eval-default", operation="evaluation")
        await line.enqueue("chat-default")
        await line.enqueue("eval-high", operation="evaluation", priority="high")
        assert [line.gate.depth(p) for p in ("high", "normal", "batch")] == [1, 1, 1]
    assert upstream_order(sim) == ["first", "eval-high", "chat-default", "eval-default"]


async def test_a_request_waiting_past_its_max_wait_is_shed_with_503(
    start: Callable[..., Awaitable[TestServer]], hold: Hold
) -> None:
    """Past max_wait_ms: 503 MODEL_UNAVAILABLE with Retry-After, nothing sent upstream, no
    retry or fallback into the same provider's queue, and no circuit opened by it."""
    server = await start(
        admission={"max_wait_ms": {"normal": 50}},
        operations={**OPERATIONS, "chat": {"rate_limit": None}},  # the seed fallback chain
    )
    gate = gates_of(server)["sim"]
    breakers = server.app[RUNTIME].breakers
    async with sdk(server) as client:
        line = Saturated(client, gate, hold)
        await line.fill()
        sheds = 6  # more than the breaker's consecutive_failures (5)
        results = await asyncio.gather(
            *(ask(client, f"shed{i}", model="gpt-4o") for i in range(sheds)),
            return_exceptions=True,
        )
        for result in results:
            assert isinstance(result, openai.InternalServerError), result
            assert result.status_code == 503
            assert int(result.response.headers["Retry-After"]) >= 1
            assert result.response.headers["x-should-retry"] == "false"
            error = result.response.json()["error"]
            assert (error["code"], error["reason"], error["retry"]) == (
                "MODEL_UNAVAILABLE",
                "queue_timeout",
                True,
            )
            assert error["retry_after_s"] == int(result.response.headers["Retry-After"])
        # One wait each: not retried, and the chain's other models on "sim" were skipped.
        assert gate.shed == sheds
        assert hold.arrived == 1  # only the first ever reached the upstream
        assert breakers.get("sim", "gpt-4o").state is State.CLOSED
        await line.drain()
        reply = await ask(client, "after", model="gpt-4o")  # the model still answers
        assert reply.http_response.status_code == 200


async def test_a_shed_falls_back_to_another_provider_with_free_slots(
    start: Callable[..., Awaitable[TestServer]],
    url: str,
    hold: Hold,
    aiohttp_server: ServerFactory,
) -> None:
    """A fallback waits for a slot of the provider it calls, not of the one that was full."""
    backup = Simulator(SimulatorConfig(seed=5))
    backup_url = str((await aiohttp_server(backup.app())).make_url("/v1"))
    server = await start(
        providers={
            "sim": sim_provider(url, max_concurrency=1),
            "backup": {"base_url": backup_url, "api_key_env": None, "max_concurrency": 1},
        },
        admission={"max_wait_ms": {"normal": 50}},
        operations={"chat": {"rate_limit": None, "fallbacks": ["gpt-4o", "backup/gpt-4o"]}},
    )
    gates = gates_of(server)
    async with sdk(server) as client:
        line = Saturated(client, gates["sim"], hold)
        await line.fill()
        reply = await ask(client, "degraded", model="gpt-4o")
        assert reply.http_response.headers["X-Sidecar-Fallback"] == "gpt-4o->backup/gpt-4o"
        assert (gates["sim"].shed, gates["backup"].shed) == (1, 0)
        assert [seen.model for seen in backup.seen] == ["gpt-4o"]
        await line.drain()
    assert gates.in_flight == 0


async def test_upstream_429s_shrink_the_limit_and_successes_restore_it(
    start: Callable[..., Awaitable[TestServer]], sim: Simulator, hold: Hold, sleeps: Sleeps
) -> None:
    """AIMD: 429s cut the concurrency (a second call then queues although 4 slots are
    configured); successes bring it back to the configured slots."""
    server = await start(slots=4)
    gate = gates_of(server)["sim"]
    hold.opened.set()
    async with sdk(server) as client:
        with pytest.raises(openai.RateLimitError):  # three attempts, three 429s
            await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "429"}],
                extra_headers={"X-Mock-Outcome": "429"},
            )
        assert len(sleeps.delays) == 2  # the sidecar retried ...
        assert (gate.limit, gate.ceiling) == (1.0, 1)  # ... each 429 halved the limit: 4, 2, 1
        hold.opened.clear()
        line = Saturated(client, gate, hold)
        await line.fill()
        await line.enqueue("second")  # one slot now: the second call waits
        await line.drain()
        recovering = 0
        while gate.ceiling < gate.slots:
            await ask(client, f"ok{recovering}")
            recovering += 1
            assert recovering < 50
    assert recovering > 1  # additive: the limit climbs back step by step
    assert gate.limit == gate.slots


async def test_no_slot_leaks_when_a_client_leaves_mid_stream(
    start: Callable[..., Awaitable[TestServer]], sim: Simulator, hold: Hold
) -> None:
    """A stream holds its slot until it ends; a client that goes away mid-stream frees it."""
    sim.config.chunk_delay_ms = 60_000  # the stream would outlast the test
    server = await start()
    gate = gates_of(server)["sim"]
    hold.opened.set()
    async with sdk(server) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "stream"}], stream=True
        )
        first = await anext(stream)
        assert first.choices[0].delta.role == "assistant"
        assert gate.in_flight == 1  # the open stream holds the slot
        await stream.close()
        await until(gate, lambda: gate.in_flight == 0)


async def test_no_slot_leaks_when_clients_cancel_queued_or_in_flight(
    start: Callable[..., Awaitable[TestServer]], hold: Hold
) -> None:
    """A client giving up while queued leaves the queue (never sent); one giving up while its
    call is upstream gives the slot back."""
    server = await start()
    gate = gates_of(server)["sim"]
    async with sdk(server) as client:
        in_flight = asyncio.create_task(ask(client, "in flight"))
        await hold.next_arrival()
        queued = asyncio.create_task(ask(client, "queued"))
        await until(gate, lambda: gate.waiting == 1)
        queued.cancel()
        await until(gate, lambda: gate.waiting == 0)
        assert gate.in_flight == 1
        in_flight.cancel()
        await until(gate, lambda: gate.in_flight == 0)
        await asyncio.gather(in_flight, queued, return_exceptions=True)
        hold.opened.set()
        reply = await ask(client, "after")  # the slot is usable again
        assert reply.http_response.status_code == 200
    assert hold.arrived == 2  # "in flight" and "after"; the queued one never went upstream
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_a_half_open_circuits_probe_skips_the_queue(
    start: Callable[..., Awaitable[TestServer]], hold: Hold
) -> None:
    """The probe is not queued (a shed would close the circuit without asking the model)."""
    server = await start()
    gate = gates_of(server)["sim"]
    breaker = server.app[RUNTIME].breakers.get("sim", "gpt-4o")
    breaker.force_open(0.0)  # the next call is the half-open probe
    async with sdk(server) as client:
        line = Saturated(client, gate, hold)
        await line.fill()
        probe = asyncio.create_task(ask(client, "probe", model="gpt-4o"))
        line.tasks.append(probe)
        await hold.next_arrival()  # it reached the upstream while the one slot was taken
        assert gate.in_flight == 2
        await line.drain()
    assert breaker.state is State.CLOSED


async def test_queue_wait_is_on_the_span_and_in_the_metrics(
    url: str, hold: Hold, aiohttp_server: ServerFactory, provider_key: str, sleeps: Sleeps
) -> None:
    """sidecar.queue.wait_ms on the request's span, sidecar.queue.wait per priority, and
    sidecar.queue.depth per priority and provider while requests wait."""
    spans = InMemorySpanExporter()
    settings = sidecar_settings(
        url, providers={"sim": sim_provider(url, max_concurrency=1)}, operations=OPERATIONS
    )
    otel = OtelProviders(otlp=False, span_exporter=spans)
    server = await aiohttp_server(create_app(settings, Overrides(otel=otel, sleep=sleeps)))
    gate = gates_of(server)["sim"]
    async with sdk(server) as client:
        line = Saturated(client, gate, hold)
        await line.fill()
        await line.enqueue("waits", priority="batch", user="patient")
        metrics = await scrape(server)
        depth = {
            labels["sidecar_priority"]: value
            for labels, value in metrics["sidecar_queue_depth"]
            if labels["gen_ai_provider_name"] == "sim"
        }
        assert depth == {"high": 0, "normal": 0, "batch": 1}
        for gauge in ("sidecar_queue_in_flight", "sidecar_queue_limit"):
            values = [(labels["gen_ai_provider_name"], value) for labels, value in metrics[gauge]]
            assert values == [("sim", 1)], gauge
        await line.drain()
    metrics = await scrape(server)
    waits = metrics["sidecar_queue_wait_seconds_count"]
    assert [
        (labels["sidecar_priority"], labels["sidecar_queue_result"]) for labels, _ in waits
    ] == [("batch", "admitted")]
    assert waits[0][1] == 1  # the first request was admitted at once: not recorded
    bounds = {labels["le"] for labels, _ in metrics["sidecar_queue_wait_seconds_bucket"]}
    assert {"0.001", "300.0"} <= bounds
    server_spans = {
        span.attributes.get(n.SIDECAR_USER): span
        for span in spans.get_finished_spans()
        if span.attributes is not None and n.SIDECAR_USER in span.attributes
    }
    wait_ms = (server_spans["patient"].attributes or {}).get(n.SIDECAR_QUEUE_WAIT_MS)
    assert isinstance(wait_ms, float)
    assert wait_ms > 0
    assert n.SIDECAR_QUEUE_WAIT_MS not in (server_spans["holder"].attributes or {})


async def scrape(server: TestServer) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/metrics")) as resp:
        text = await resp.text()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples
