"""Alerts: a JSON POST to ``alerts.webhook_url``, sent by the runtime's background runner.

Alerts are deduplicated per key (operation and model, or provider) for
``telemetry.alert_dedup_s``, so a slow upstream produces one alert, not a storm; a full
background queue drops an alert rather than slow a request. Webhook URLs carry their secret in
the path (Slack, Discord): logs name the host only.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from sidecar.background import Background

log = logging.getLogger(__name__)


def url_host(url: str) -> str:
    """``https://hooks.slack.com`` for ``https://hooks.slack.com/services/T0/B0/secret``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class WebhookAlerts:
    def __init__(self, url: str | None, *, dedup_s: float = 300.0) -> None:
        self.url = url
        self.dedup_s = dedup_s
        self.sent = 0
        self.suppressed = 0
        self._last: dict[tuple[str, ...], float] = {}
        self._background: Background | None = None
        self._session: aiohttp.ClientSession | None = None
        self._failing_since: float | None = None

    def start(self, background: Background) -> None:
        if self.url and self._session is None:
            self._background = background
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def notify(self, key: tuple[str, ...], payload: dict[str, Any]) -> bool:
        """Queue an alert unless one with the same key went out recently; never blocks."""
        if not self.url or self._background is None:
            return False
        now = time.monotonic()
        if now - self._last.get(key, -self.dedup_s) < self.dedup_s:
            self.suppressed += 1
            return False
        if len(self._last) > 10_000:  # keys are bounded in practice; stay bounded regardless
            self._last.clear()
        self._last[key] = now

        async def post() -> None:
            await self._post(payload)

        if not self._background.submit("webhook", post):
            self.suppressed += 1
            return False
        return True

    async def _post(self, payload: dict[str, Any]) -> None:
        if self._session is None or self.url is None:
            return  # closed while the alert waited
        try:
            async with self._session.post(self.url, json=payload) as response:
                response.raise_for_status()
            self.sent += 1
            self._failing_since = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning(
                    "alert webhook at %s failed (%s); alerts are being dropped",
                    url_host(self.url),
                    type(exc).__name__,
                )
