"""Fixtures for the job tests: a sidecar whose jobs live in process or in Redis (BullMQ)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.helpers import REDIS_URL, MakeSidecar
from tests.jobs.client import JobsClient, merged

# Fast and countable: one upstream call per job attempt, no rate limit, short backoffs.
JOB_TEST_SETTINGS: dict[str, Any] = {
    "operations": {"chat": {"rate_limit": None, "max_attempts": 1, "fallbacks": []}},
    "jobs": {"queues": {p: {"backoff_ms": 50} for p in ("high", "normal", "batch")}},
}

JobSidecar = Callable[..., Awaitable[TestServer]]


@pytest.fixture(params=["memory", "redis"])
def job_backend(request: pytest.FixtureRequest, key_prefix: str) -> dict[str, Any]:
    """Settings for each job queue: in process, or BullMQ under this test's key prefix."""
    if request.param == "memory":
        return {}
    return redis_jobs(key_prefix)


def redis_jobs(key_prefix: str) -> dict[str, Any]:
    return {
        "redis_url": REDIS_URL,
        "backends": {"redis_prefix": key_prefix},
        "jobs": {"prefix": key_prefix.rstrip(":")},
    }


@pytest.fixture
def job_sidecar(
    job_backend: dict[str, Any], upstream: TestServer, make_sidecar: MakeSidecar
) -> JobSidecar:
    """Start a sidecar in front of the simulator with the job backend and these overrides."""

    async def make(**overrides: Any) -> TestServer:
        settings = merged(JOB_TEST_SETTINGS, job_backend, overrides)
        return await make_sidecar(str(upstream.make_url("/v1")), **settings)

    return make


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def jobs(job_sidecar: JobSidecar, http: aiohttp.ClientSession) -> JobsClient:
    """The jobs API of a sidecar with the default job test settings."""
    return JobsClient(http, await job_sidecar())
