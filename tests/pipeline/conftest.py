"""Fixtures for the pipeline tests: the response cache harness on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidecar.pipeline.cache import ResponseCache
from tests.pipeline.cache_harness import (
    Clock,
    Harness,
    ManualBackground,
    Upstream,
    open_runtime,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def h(
    request: pytest.FixtureRequest,
    clock: Clock,
    key_prefix: str,
    provider_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Harness]:
    rt = await open_runtime(request.param, clock, key_prefix)
    lookups: list[bool] = []
    monkeypatch.setattr(rt.telemetry, "cache_lookup", lambda ex, *, hit: lookups.append(hit))
    assert isinstance(rt.background, ManualBackground)
    harness = Harness(
        rt, ResponseCache(rt, clock=clock), Upstream(), rt.background, clock, request.param, lookups
    )
    yield harness
    await rt.close()
