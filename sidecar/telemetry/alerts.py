"""Slow-operation alerts: a JSON POST to ``alerts.webhook_url``, in the background.

Alerts are deduplicated per (operation, model) for ``telemetry.alert_dedup_s`` and queued in a
small bounded queue, so a slow upstream produces one alert, not a storm, and a dead webhook never
slows a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class WebhookAlerts:
    def __init__(self, url: str | None, *, dedup_s: float = 300.0, queue_size: int = 100) -> None:
        self.url = url
        self.dedup_s = dedup_s
        self.sent = 0
        self.suppressed = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._last: dict[tuple[str, ...], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._failing_since: float | None = None

    def start(self) -> None:
        if self.url and self._task is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def notify(self, key: tuple[str, ...], payload: dict[str, Any]) -> bool:
        """Queue an alert unless one with the same key went out recently; never blocks."""
        if not self.url:
            return False
        now = time.monotonic()
        if now - self._last.get(key, -self.dedup_s) < self.dedup_s:
            self.suppressed += 1
            return False
        if len(self._last) > 10_000:  # keys are bounded in practice; stay bounded regardless
            self._last.clear()
        self._last[key] = now
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.suppressed += 1
            return False
        return True

    async def _run(self) -> None:
        while True:
            payload = await self._queue.get()
            await self._post(payload)

    async def _post(self, payload: dict[str, Any]) -> None:
        assert self._session is not None
        assert self.url is not None
        try:
            async with self._session.post(self.url, json=payload) as response:
                response.raise_for_status()
            self.sent += 1
            self._failing_since = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning("alert webhook %s failed (%s); alerts are being dropped", self.url, exc)
