"""A small client of the sidecar's jobs API (plain HTTP, as any app would call it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
FINISHED = ("completed", "failed")


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Settings dicts merged key by key (nested dicts too); later layers win."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


class JobsClient:
    def __init__(self, http: aiohttp.ClientSession, server: TestServer) -> None:
        self.http = http
        self.server = server

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post(
        self, payload: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.url("/sidecar/jobs"), json=payload, headers=headers) as r:
            return r.status, await r.json()

    async def submit(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        status, body = await self.post(payload, headers)
        assert status == 202, body
        job_id: str = body["id"]
        return job_id

    async def get(self, job_id: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.url(f"/sidecar/jobs/{job_id}")) as r:
            return r.status, await r.json()

    async def wait(
        self, job_id: str, states: tuple[str, ...] = FINISHED, timeout_s: float = 20
    ) -> dict[str, Any]:
        """The job once it is in one of ``states`` (polled; bounded by ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, job = await self.get(job_id)
            assert status == 200, job
            if job["status"] in states:
                return job
            assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
            await asyncio.sleep(0.02)

    async def counts(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        async with self.http.get(self.url("/sidecar/queues"), headers=headers) as r:
            assert r.status == 200, await r.text()
            counts: dict[str, Any] = await r.json()
            return counts
