"""Can the upstream serve? A cheap, cached probe per provider plus the circuit breakers.

The probe is ``GET {base_url}/models`` with the provider's key: free, and it proves the address,
the TLS and the key. Results are cached for ``ttl_s`` and concurrent readiness checks share one
probe in flight, so an orchestrator polling ``/readyz`` every second never hammers the provider
or costs money.

==============================================  ==========
what the probe and the breakers say             upstream
==============================================  ==========
every provider answers in < 1 s, circuits ok    healthy
a provider slow (>= 1 s), refusing our key,     degraded
  unreachable while another answers, or some
  circuits open
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
from sidecar.errors import SidecarError
from sidecar.upstream.breaker import Breakers, State
from sidecar.upstream.transport import Transport, UpstreamRequest

SLOW_S = 1.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    provider: str
    status: Status
    latency_ms: float | None
    message: str
    at: float


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
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.breakers = breakers
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.slow_s = slow_s
        self._results: dict[str, ProbeResult] = {}
        self._inflight: dict[str, asyncio.Future[ProbeResult]] = {}

    async def health(self) -> dict[str, Any]:
        """The upstream's readiness entry: status, latency, message, providers and circuits."""
        providers = [await self._cached(name) for name in self.settings.providers]
        circuits = [
            {"provider": provider, "model": model, "state": state.name.lower()}
            for provider, model, state in self.breakers.states()
        ]
        status, message = _verdict(providers, circuits)
        latencies = [p.latency_ms for p in providers if p.latency_ms is not None]
        return {
            "status": status,
            "latency_ms": round(max(latencies), 2) if latencies else None,
            "message": message,
            "providers": {
                p.provider: {"status": p.status, "latency_ms": p.latency_ms, "message": p.message}
                for p in providers
            },
            "circuits": circuits,
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
        return ProbeResult(name, status, round(latency_ms, 2), message, time.monotonic())


def _request(provider: Provider, timeout_s: float) -> UpstreamRequest:
    headers = {"accept": "application/json"}
    if key := provider.api_key():
        headers["authorization"] = f"Bearer {key}"
    return UpstreamRequest("GET", f"{provider.base_url}/models", headers, b"", timeout_s)


def _verdict(providers: list[ProbeResult], circuits: list[dict[str, str]]) -> tuple[Status, str]:
    down = [p.provider for p in providers if p.status == "unhealthy"]
    open_ = [c for c in circuits if c["state"] == State.OPEN.name.lower()]
    if len(down) == len(providers):
        return "unhealthy", "no provider answers: " + "; ".join(p.message for p in providers)
    if circuits and len(open_) == len(circuits):
        names = ", ".join(f"{c['provider']}/{c['model']}" for c in open_)
        return "unhealthy", f"every known route has its circuit open: {names}"
    problems = [f"{p.provider}: {p.message}" for p in providers if p.status != "healthy"]
    problems += [f"circuit {c['provider']}/{c['model']} {c['state']}" for c in circuits
                 if c["state"] != "closed"]  # fmt: skip
    if problems:
        return "degraded", "; ".join(problems)
    return "healthy", "every provider answers; all circuits closed"
