"""Usage stores: SQLite and PostgreSQL keep the same records, exactly, through a reopen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.backends import UsageRecord, UsageStore
from sidecar.backends.setup import open_usage_store
from sidecar.backends.usage import PostgresUsage, SqliteUsage

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
) -> UsageRecord:
    return UsageRecord(
        time=at,
        request_id="req",
        user=user,
        operation="chat",
        model_requested=model,
        model_served=model,
        provider="openai",
        cost_micros=cost,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        images=images,
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
    rows = await store.by_model("alice", T0 - timedelta(days=2), T0 + timedelta(days=1))
    by_model = {row.model: row for row in rows}
    assert by_model["gpt-4o"].cost_micros == 3_000_003
    assert (by_model["gpt-4o"].requests, by_model["gpt-4o"].input_tokens) == (2, 30)
    assert by_model["gpt-4o"].output_tokens == 12
    assert by_model["dall-e-3"].images == 1
    assert rows[0].model == "gpt-4o"  # most expensive first


async def test_writing_the_same_record_twice_stores_it_once(store: UsageStore) -> None:
    """A record replayed after a crash (same record_id) is not counted twice."""
    once = record("carol", "gpt-4o-mini", 700)
    await store.write([once])
    await store.write([once])
    (row,) = await store.by_model("carol", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert (row.requests, row.cost_micros) == (1, 700)


async def test_records_survive_closing_and_reopening(database_url: str) -> None:
    """What write() returned for is on disk: a new store on the same URL reads it back."""
    first = await open_usage_store(database_url)
    await first.write([record("dave", "gpt-4o", 123)])
    await first.close()
    second = await open_usage_store(database_url)
    try:
        rows = await second.by_model("dave", T0 - timedelta(days=1), T0 + timedelta(days=1))
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
