"""Usage stores: SQLite and PostgreSQL keep the same records, exactly, through a reopen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sidecar.backends import UsageRecord, UsageStore
from sidecar.backends.setup import open_usage_store
from sidecar.backends.usage import PostgresUsage, SqliteUsage
from sidecar.usage_report import by_model

T0 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def record(
    user: str,
    model: str,
    cost: int | None,
    *,
    at: datetime = T0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    images: int = 0,
    **more: Any,
) -> UsageRecord:
    return UsageRecord(
        **{
            "time": at,
            "request_id": "req",
            "user": user,
            "operation": "chat",
            "model_requested": model,
            "model_served": model,
            "provider": "openai",
            "cost_micros": cost,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "images": images,
            **more,
        }
    )


async def test_records_sum_exactly_per_model_within_the_period(store: UsageStore) -> None:
    """Micro-dollars add up without rounding; other users and other months are left out."""
    await store.write(
        [
            record("alice", "gpt-4o", 1_000_001, input_tokens=10, output_tokens=5),
            record("alice", "gpt-4o", 2_000_002, input_tokens=20, output_tokens=7),
            record("alice", "dall-e-3", 40_000, images=1),
            record("bob", "gpt-4o", 9_999_999),
            record("alice", "gpt-4o", 5, at=T0 - timedelta(days=40)),
        ]
    )
    rows = by_model(await store.breakdown("alice", T0 - timedelta(days=2), T0 + timedelta(days=1)))
    by_name = {row.model: row for row in rows}
    assert by_name["gpt-4o"].cost_micros == 3_000_003
    assert (by_name["gpt-4o"].requests, by_name["gpt-4o"].input_tokens) == (2, 30)
    assert by_name["gpt-4o"].output_tokens == 12
    assert by_name["dall-e-3"].images == 1
    assert rows[0].model == "gpt-4o"  # most expensive first


async def test_the_breakdown_sums_cache_fallbacks_failures_and_retries_per_operation(
    store: UsageStore,
) -> None:
    """Per operation and model: cache hits and what they saved, fallbacks and their cost, calls
    that did not succeed and their cost (a stream cut mid-way), retried calls and the extra
    upstream calls, and the unpriced records apart from the cost."""
    await store.write(
        [
            record("ida", "gpt-4o", 100, cache_hit=True, saved_micros=0, upstream_calls=0),
            record("ida", "gpt-4o", 0, cache_hit=True, saved_micros=250, upstream_calls=0),
            record("ida", "gpt-4o-mini", 40, fallback="gpt-4o->gpt-4o-mini", upstream_calls=3),
            record("ida", "gpt-4o", 70, outcome="client_disconnected", estimated=True),
            record("ida", "gpt-4o", 5, upstream_calls=2),
            record("ida", "mystery", None),
            record("ida", "gpt-4o", 1_000, operation="summarize"),
        ]
    )
    groups = await store.breakdown("ida", T0 - timedelta(days=1), T0 + timedelta(days=1))
    by_key = {(group.operation, group.model): group for group in groups}
    chat = by_key["chat", "gpt-4o"]
    assert (chat.requests, chat.cost_micros, chat.cache_hits, chat.saved_micros) == (4, 175, 2, 250)
    assert (chat.failed, chat.failed_micros, chat.retried, chat.extra_calls) == (1, 70, 1, 1)
    fallback = by_key["chat", "gpt-4o-mini"]
    assert (fallback.fallbacks, fallback.fallback_micros, fallback.extra_calls) == (1, 40, 2)
    assert (by_key["chat", "mystery"].unpriced, by_key["chat", "mystery"].cost_micros) == (1, 0)
    assert groups[0] == by_key["summarize", "gpt-4o"]  # most costly first
    (merged,) = [row for row in by_model(groups) if row.model == "gpt-4o"]
    assert (merged.requests, merged.cost_micros) == (5, 1_175)


async def test_writing_the_same_record_twice_stores_it_once(store: UsageStore) -> None:
    """A record replayed after a crash (same record_id) is not counted twice."""
    once = record("carol", "gpt-4o-mini", 700)
    await store.write([once])
    await store.write([once])
    (row,) = await store.breakdown("carol", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert (row.requests, row.cost_micros) == (1, 700)


async def test_records_survive_closing_and_reopening(database_url: str) -> None:
    """What write() returned for is on disk: a new store on the same URL reads it back."""
    first = await open_usage_store(database_url)
    await first.write([record("dave", "gpt-4o", 123)])
    await first.close()
    second = await open_usage_store(database_url)
    try:
        rows = await second.breakdown("dave", T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert [(r.model, r.cost_micros) for r in rows] == [("gpt-4o", 123)]
        assert (await second.health()).status == "healthy"
    finally:
        await second.close()


async def test_an_unreachable_database_is_reported_not_fatal() -> None:
    """A PostgreSQL that does not answer: open() logs, health() says why, write() raises."""
    store = PostgresUsage("postgresql://postgres@127.0.0.1:1/none", retry_s=0)
    await store.open()
    health = await store.health()
    assert health.status == "unhealthy"
    assert health.backend == "postgresql"
    with pytest.raises(ConnectionError):
        await store.write([record("erin", "gpt-4o", 1)])


async def test_an_unwritable_sqlite_path_is_reported_not_fatal(tmp_path: Path) -> None:
    """A SQLite file that cannot be created: health() names the path and the reason."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = SqliteUsage(f"sqlite:///{blocker}/usage.db")
    await store.open()
    health = await store.health()
    assert health.status == "unhealthy"
    assert str(blocker) in health.message
