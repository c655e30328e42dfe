"""Can the upstream serve? A cheap, cached probe per provider, plus what live traffic says.

The probe is ``GET {base_url}/models`` with the provider's key: free, and it proves the address,
the TLS and the key. Results are cached for ``ttl_s`` and concurrent readiness checks share one
probe in flight, so an orchestrator polling ``/readyz`` every second never hammers the provider
or costs money.

Live traffic is the passive half, and costs nothing: the circuit breakers (opened by failing
calls), providers resting after live calls were refused our key, and the model calls of the
last minute from the rolling statistics (a failure rate spread over many routes opens no single
breaker, but still shows here).

==============================================  ==========
what the probe and live traffic say             upstream
==============================================  ==========
every provider answers in < 1 s, circuits ok    healthy
a provider slow (>= 1 s), refusing our key,     degraded
  unreachable while another answers, or some
  circuits open, or resting after live calls
  were refused our key, or at least half of
  the last minute's live calls (>= 10) failed
every provider unreachable, or every circuit    unhealthy (503)
  the sidecar knows of is open
==============================================  ==========
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from sidecar.backends import Status
from sidecar.config import Provider, Settings
from sidecar.errors import ErrorCode, SidecarError
from sidecar.telemetry.stats import RollingStats
from sidecar.upstream.breaker import Breakers, State
from sidecar.upstream.transport import Transport, UpstreamRequest

SLOW_S = 1.0
# Live traffic degrades readiness when, over the last LIVE_WINDOW_S, at least LIVE_MIN_CALLS
# model calls were made and at least LIVE_FAILURE_RATIO of them failed on the model side.
LIVE_WINDOW_S = 60.0
LIVE_MIN_CALLS = 10
LIVE_FAILURE_RATIO = 0.5
# Refusals that say nothing about the model side's health: a user's budget or the account's
# quota (the circuit breakers do not count an account-level failure either).
_NOT_UPSTREAM_HEALTH = (ErrorCode.QUOTA_EXCEEDED.value,)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    provider: str
    status: Status
    latency_ms: float | None
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class LiveTraffic:
    """The model calls of live requests over the last ``window_s``, and those that failed.

    Cache hits, the sidecar's own refusals (rate limits, budgets, security checks) and the
    client's mistakes are not model calls that tell anything about the upstream, so they are
    left out.
    """

    window_s: float
    calls: int
    failed: int

    @property
    def error_rate(self) -> float:
        return self.failed / self.calls if self.calls else 0.0

    @property
    def failing(self) -> bool:
        return self.calls >= LIVE_MIN_CALLS and self.error_rate >= LIVE_FAILURE_RATIO

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "calls": self.calls,
            "failed": self.failed,
            "error_rate": round(self.error_rate, 4),
        }


def live_traffic(stats: RollingStats, window_s: float = LIVE_WINDOW_S) -> LiveTraffic:
    """Count the last ``window_s`` of every model's ring of recent requests."""
    since = time.monotonic() - window_s
    calls = failed = 0
    for ring in stats.models.values():
        summary = ring.summary(since, stats.codes)
        ignored = sum(summary.error_codes.get(code, 0) for code in _NOT_UPSTREAM_HEALTH)
        not_calls = summary.cache_hits + summary.client_errors + summary.refused + ignored
        calls += summary.count - not_calls
        failed += summary.upstream_errors - ignored
    return LiveTraffic(window_s, calls, failed)


class UpstreamProbe:
    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        breakers: Breakers,
        *,
        ttl_s: float = 10.0,
        timeout_s: float = 2.0,
        slow_s: float = SLOW_S,
        live: RollingStats | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.breakers = breakers
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.slow_s = slow_s
        self.live = live
        self._results: dict[str, ProbeResult] = {}
        self._inflight: dict[str, asyncio.Future[ProbeResult]] = {}

    async def health(self) -> dict[str, Any]:
        """The upstream's readiness entry: status, latency, message, providers, circuits, live."""
        # Probed side by side: one slow provider must not add its wait to every other one.
        providers = list(await asyncio.gather(*map(self._cached, self.settings.providers)))
        resting = {name for name in self.settings.providers if self.breakers.provider_resting(name)}
        circuits = [
            {"provider": provider, "model": model, "state": state.name.lower()}
            for provider, model, state in self.breakers.states()
        ]
        live = live_traffic(self.live) if self.live is not None else None
        status, message = _verdict(providers, circuits, resting, live)
        latencies = [p.latency_ms for p in providers if p.latency_ms is not None]
        return {
            "status": status,
            "latency_ms": round(max(latencies), 2) if latencies else None,
            "message": message,
            "providers": {
                p.provider: {
                    "status": p.status,
                    "latency_ms": p.latency_ms,
                    "message": p.message,
                    "resting": p.provider in resting,
                }
                for p in providers
            },
            "circuits": circuits,
            "live": live.as_dict() if live is not None else None,
        }

    async def _cached(self, name: str) -> ProbeResult:
        result = self._results.get(name)
        if result is not None and time.monotonic() - result.at < self.ttl_s:
            return result
        inflight = self._inflight.get(name)
        if inflight is None:
            inflight = asyncio.ensure_future(self._probe(name))
            self._inflight[name] = inflight
            inflight.add_done_callback(lambda _: self._inflight.pop(name, None))
        result = await asyncio.shield(inflight)
        self._results[name] = result
        return result

    async def _probe(self, name: str) -> ProbeResult:
        provider = self.settings.providers[name]
        started = time.perf_counter()
        try:
            response = await self.transport.send(_request(provider, self.timeout_s))
            await response.read()
        except SidecarError as err:
            return ProbeResult(name, "unhealthy", None, err.message, time.monotonic())
        latency_ms = (time.perf_counter() - started) * 1000
        status: Status = "healthy"
        message = f"GET /models answered {response.status} in {latency_ms:.0f} ms"
        if response.status in (401, 403):
            status, message = "degraded", f"{name} refuses the sidecar's key ({response.status})"
        elif response.status >= 500:
            status = "unhealthy"
        elif latency_ms >= self.slow_s * 1000:
            status = "degraded"
            message += f" (slower than {self.slow_s * 1000:.0f} ms)"
        return ProbeResult(name, status, round(latency_ms, 2), message, time.monotonic())


def _request(provider: Provider, timeout_s: float) -> UpstreamRequest:
    headers = {"accept": "application/json"}
    if key := provider.api_key():
        headers["authorization"] = f"Bearer {key}"
    return UpstreamRequest("GET", f"{provider.base_url}/models", headers, b"", timeout_s)


def _verdict(
    providers: list[ProbeResult],
    circuits: list[dict[str, str]],
    resting: set[str],
    live: LiveTraffic | None,
) -> tuple[Status, str]:
    down = [p.provider for p in providers if p.status == "unhealthy"]
    open_ = [c for c in circuits if c["state"] == State.OPEN.name.lower()]
    if len(down) == len(providers):
        return "unhealthy", "no provider answers: " + "; ".join(p.message for p in providers)
    if resting and resting.union(down) >= {p.provider for p in providers}:
        return "unhealthy", (
            "no provider can be called: "
            + ", ".join(sorted(resting))
            + " rejected the sidecar's credentials (check api_key_env)"
        )
    if circuits and len(open_) == len(circuits):
        names = ", ".join(f"{c['provider']}/{c['model']}" for c in open_)
        return "unhealthy", f"every known route has its circuit open: {names}"
    problems = [f"{p.provider}: {p.message}" for p in providers if p.status != "healthy"]
    problems += [f"circuit {c['provider']}/{c['model']} {c['state']}" for c in circuits
                 if c["state"] != "closed"]  # fmt: skip
    problems += [
        f"{name}: resting after live calls were refused our key" for name in sorted(resting)
    ]
    if live is not None and live.failing:
        problems.append(
            f"live traffic: {live.failed} of {live.calls} model calls failed in the last "
            f"{live.window_s:.0f} s"
        )
    if problems:
        return "degraded", "; ".join(problems)
    return "healthy", "every provider answers; all circuits closed"
