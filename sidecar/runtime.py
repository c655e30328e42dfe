"""The long-lived parts of one sidecar process, created at start-up and closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.config import Settings
from sidecar.telemetry.recorder import Telemetry
from sidecar.telemetry.setup import Providers
from sidecar.upstream.transport import HttpTransport, Transport


@dataclass
class Runtime:
    settings: Settings
    transport: Transport
    telemetry: Telemetry

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        transport: Transport | None = None,
        providers: Providers | None = None,
    ) -> Runtime:
        return cls(
            settings=settings,
            transport=transport or HttpTransport(),
            telemetry=Telemetry(settings, providers or Providers()),
        )

    def start(self) -> None:
        self.telemetry.start()

    async def close(self) -> None:
        await self.transport.close()
        await self.telemetry.close()
