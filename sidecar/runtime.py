"""The long-lived parts of one sidecar process, created at start-up and closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.config import Settings
from sidecar.upstream.transport import HttpTransport, Transport


@dataclass
class Runtime:
    settings: Settings
    transport: Transport

    @classmethod
    def create(cls, settings: Settings, *, transport: Transport | None = None) -> Runtime:
        return cls(settings=settings, transport=transport or HttpTransport())

    async def close(self) -> None:
        await self.transport.close()
