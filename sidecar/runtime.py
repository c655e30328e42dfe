"""The long-lived parts of one sidecar process: opened at start-up, drained and closed at shutdown.

Everything that outlives a request lives here, not inside a stage: the upstream transport,
telemetry, circuit breakers and retry budgets, the backends (counters, cache, usage store, job
queue) and the background runner for work after the reply.

Tests and benchmarks replace parts through one seam, :class:`Overrides`.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.backends import JOB_QUEUES, Backends
from sidecar.backends.setup import open_backends
from sidecar.backends.usage import sqlite_path
from sidecar.background import Background
from sidecar.config import ConfigError, Settings
from sidecar.pricing import Pricing
from sidecar.telemetry.recorder import Telemetry
from sidecar.telemetry.setup import OtelProviders
from sidecar.upstream.breaker import Breakers, RetryBudget
from sidecar.upstream.probe import UpstreamProbe
from sidecar.upstream.transport import HttpTransport, Transport
from sidecar.usage_log import UsageLog, journal_path_for

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Overrides:
    """Parts to use instead of the ones the configuration would build (tests, benchmarks)."""

    transport: Transport | None = None
    otel: OtelProviders | None = None
    # How the pipeline waits between retries; tests pass one that records instead of sleeping.
    sleep: Sleep | None = None
    backends: Backends | None = None


@dataclass
class Runtime:
    settings: Settings
    transport: Transport
    telemetry: Telemetry
    breakers: Breakers
    budget: RetryBudget
    backends: Backends
    background: Background
    probe: UpstreamProbe
    pricing: Pricing
    usage_log: UsageLog
    sleep: Sleep

    @classmethod
    async def open(cls, settings: Settings, overrides: Overrides | None = None) -> Runtime:
        parts = overrides or Overrides()
        if missing := settings.missing_keys():
            raise ConfigError("\n".join(missing))
        pricing = Pricing.load(settings.pricing_file)
        telemetry = Telemetry(settings, parts.otel or OtelProviders(), priced=pricing.models)
        resilience = settings.resilience
        breakers = Breakers(resilience.breaker)
        budget = RetryBudget(
            ratio=resilience.retry_budget_ratio,
            floor=resilience.retry_budget_floor,
            window_s=resilience.retry_budget_window_s,
        )
        background = Background(capacity=settings.backends.background_queue)
        transport = parts.transport or HttpTransport()
        probe = UpstreamProbe(
            settings,
            transport,
            breakers,
            ttl_s=settings.health.probe_ttl_s,
            timeout_s=settings.health.probe_timeout_s,
            live=telemetry.stats,
        )
        backends = parts.backends or await open_backends(settings)
        usage_log = UsageLog(backends.usage, _journal_path(settings.database_url))
        rt = cls(
            settings=settings,
            transport=transport,
            telemetry=telemetry,
            breakers=breakers,
            budget=budget,
            backends=backends,
            background=background,
            probe=probe,
            pricing=pricing,
            usage_log=usage_log,
            sleep=parts.sleep or asyncio.sleep,
        )
        telemetry.observe_circuits(breakers.states)
        telemetry.observe_background(background)
        background.start()
        telemetry.start(background)
        await usage_log.start()
        return rt

    async def health(self) -> dict[str, Any]:
        """Every service's readiness entry (``/readyz``): the upstream, then each backend."""
        services: dict[str, Any] = {"upstream": await self.probe.health()}
        for name, health in (await self.backends.health()).items():
            services[name] = health.as_dict()
        if self.usage_log.spilled and services["database"]["status"] == "healthy":
            services["database"]["status"] = "degraded"
            services["database"]["message"] += "; usage records waiting in the local journal"
        if services["queues"]["status"] != "unhealthy":
            services["queues"]["backlog"] = await self._backlog()
        return services

    async def _backlog(self) -> dict[str, int] | None:
        """Jobs waiting (delayed included) per queue; None when the queue cannot say."""
        try:
            counts = await self.backends.jobs.counts(list(JOB_QUEUES.values()))
        except Exception:  # the queue's health already says what is wrong
            return None
        return {name: states["waiting"] + states["delayed"] for name, states in counts.items()}

    async def close(self) -> None:
        """Finish work after the reply (bounded), then close backends, transport, telemetry."""
        await self.background.drain(self.settings.backends.drain_s)
        await _quietly("usage log", self.usage_log.close(self.settings.backends.drain_s))
        await _quietly("backends", self.backends.close())
        await _quietly("transport", self.transport.close())
        await _quietly("telemetry", self.telemetry.close())


def _journal_path(database_url: str) -> Path:
    """Beside the database file; for an in-memory database (tests, the demo), which a crash
    loses anyway, a fresh temporary directory so runs never share or leave a journal."""
    if database_url.startswith("sqlite:") and sqlite_path(database_url) == ":memory:":
        return Path(tempfile.mkdtemp(prefix="sidecar-journal-")) / "usage.pending.jsonl"
    return journal_path_for(database_url)


async def _quietly(name: str, closing: Awaitable[Any]) -> None:
    """One part failing to close must not keep the others open."""
    try:
        await closing
    except Exception:
        log.exception("closing %s failed", name)
