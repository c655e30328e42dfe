"""The long-lived parts of one sidecar process, created at start-up and closed at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sidecar.config import Settings
from sidecar.telemetry.recorder import Telemetry
from sidecar.telemetry.setup import Providers
from sidecar.upstream.breaker import Breakers
from sidecar.upstream.transport import HttpTransport, Transport

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Runtime:
    settings: Settings
    transport: Transport
    telemetry: Telemetry
    breakers: Breakers
    # How the pipeline waits between retries; tests swap in one that records instead of sleeping.
    sleep: Sleep = field(default=asyncio.sleep)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        transport: Transport | None = None,
        providers: Providers | None = None,
        sleep: Sleep | None = None,
    ) -> Runtime:
        telemetry = Telemetry(settings, providers or Providers())
        breakers = Breakers(settings.resilience.breaker)
        telemetry.observe_circuits(breakers.states)
        return cls(
            settings=settings,
            transport=transport or HttpTransport(),
            telemetry=telemetry,
            breakers=breakers,
            sleep=sleep or asyncio.sleep,
        )

    def start(self) -> None:
        self.telemetry.start()

    async def close(self) -> None:
        await self.transport.close()
        await self.telemetry.close()
