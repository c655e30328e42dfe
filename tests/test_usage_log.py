"""The usage log: records are durable when ``record()`` returns (written ahead), group-committed
after, journaled while the database is away and stored exactly once when it answers; SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import asyncpg
import pytest

from sidecar.backends import UsageStore
from sidecar.backends.setup import open_usage_store
from sidecar.backends.usage import CHECKPOINT_ROWS, SQLITE_ROWS, SqliteUsage, sqlite_path
from sidecar.usage_log import (
    UsageLog,
    UsageNotDurable,
    WriteAhead,
    decode,
    encode,
    journal_path_for,
)
from tests.crash_writer import usage_record
from tests.helpers import PG_ADMIN_URL


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "usage.pending.jsonl"


@pytest.fixture
async def usage_log(store: UsageStore, journal: Path) -> AsyncIterator[UsageLog]:
    log = UsageLog(store, journal)
    await log.start()
    yield log
    await log.close()


async def stored_ids(database_url: str) -> list[str]:
    """Every record_id in the database, read over a connection of its own."""
    if database_url.startswith("sqlite"):
        async with aiosqlite.connect(sqlite_path(database_url)) as db:
            rows = await db.execute_fetchall("SELECT record_id FROM usage_records")
            return [str(row[0]) for row in rows]
    conn = await asyncpg.connect(database_url)
    try:
        return [str(row[0]) for row in await conn.fetch("SELECT record_id FROM usage_records")]
    finally:
        await conn.close()


def unreachable_url(database_url: str, tmp_path: Path) -> str:
    """A database of the same kind that does not answer."""
    if database_url.startswith("sqlite"):
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        return f"sqlite:///{blocker}/usage.db"
    return "postgresql://postgres@127.0.0.1:1/none"


@asynccontextmanager
async def outage(store: UsageStore, database_url: str) -> AsyncIterator[None]:
    """The database stops answering inside the block and answers again after it."""
    if isinstance(store, SqliteUsage):
        await store.close()
        try:
            yield
        finally:
            await store.open()
        return
    name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1",
            name,
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


@asynccontextmanager
async def locked(database_url: str) -> AsyncIterator[None]:
    """Another connection holds the write lock on the records inside the block."""
    if database_url.startswith("sqlite"):
        async with aiosqlite.connect(sqlite_path(database_url)) as db:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                await db.rollback()
        return
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE usage_records IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


def wal_bytes(database: Path) -> int:
    return database.with_name(database.name + "-wal").stat().st_size


def journal_files(journal: Path) -> dict[str, int]:
    """The journal slots on disk, by name, with their number of lines."""
    slots = journal.parent.glob(f"{journal.name}*")
    return {path.name: len(path.read_bytes().splitlines()) for path in slots}


class Gate:
    """Stands in for the wait between retries: records each delay and lets it end only when
    the test opens the gate (once per opening)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._opened = 0
        self._changed = asyncio.Condition()

    async def __call__(self, delay: float) -> None:
        async with self._changed:
            self.delays.append(delay)
            ticket = len(self.delays)
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self._opened >= ticket)

    async def reached(self, calls: int) -> None:
        """Until the wait has been entered ``calls`` times."""
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.delays) >= calls)

    async def open(self) -> None:
        async with self._changed:
            self._opened += 1
            self._changed.notify_all()


async def parked(delay: float) -> None:
    """A retry wait that never ends (the test decides when the log stops)."""
    await asyncio.Event().wait()


async def test_500_concurrent_records_are_all_stored_in_group_commits(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """500 record() calls at once: all 500 rows are stored, in batches of up to max_batch
    records per transaction (group commit), not one transaction per record."""
    log = UsageLog(store, journal, max_batch=64)
    await log.start()
    try:
        records = [usage_record() for _ in range(500)]
        await asyncio.gather(*(log.record(record) for record in records))
        assert await log.flush()
        assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
        assert (log.committed, log.journaled, log.depth) == (500, 0, 0)
        assert 1 < log.batches < 500
        assert log.largest_batch == 64
    finally:
        await log.close()


async def test_a_batch_larger_than_one_statement_is_committed_whole(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """A batch past what one SQLite statement binds (1820 rows) is written in one transaction
    of several statements; every record is stored."""
    log = UsageLog(store, journal, max_batch=5000)
    await log.start()
    try:
        records = [usage_record() for _ in range(SQLITE_ROWS + 200)]
        await asyncio.gather(*(log.record(record) for record in records))
        assert await log.flush()
        assert (log.batches, log.committed) == (1, len(records))
        assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
    finally:
        await log.close()


async def test_sqlite_commits_on_the_event_loop_keep_the_wal_checkpointed(tmp_path: Path) -> None:
    """Batches committed on the event loop do not checkpoint there; the thread does, every
    CHECKPOINT_ROWS rows, so the WAL file stays a few MB (about 27 MB without) over 20,000
    records."""
    url = f"sqlite:///{tmp_path}/usage.db"
    store = await open_usage_store(url)
    log = UsageLog(store, tmp_path / "usage.pending.jsonl", max_batch=200)
    await log.start()
    try:
        for _ in range(100):
            await asyncio.gather(*(log.record(usage_record()) for _ in range(200)))
        assert await log.flush()
        assert (log.committed, log.journaled) == (20_000, 0)
        assert wal_bytes(tmp_path / "usage.db") < 12 * CHECKPOINT_ROWS * 1024
    finally:
        await log.close()
        await store.close()


def segments(journal: Path) -> list[bytes]:
    """The contents of the journal slot's two write-ahead segments (b"" for a missing one)."""
    return [path.read_bytes() if path.exists() else b"" for path in WriteAhead.paths_for(journal)]


async def test_record_returns_once_written_ahead_and_flush_once_committed(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """record() returns with the record's line in a write-ahead segment, before any commit
    (the database is locked); flush() returns once another connection reads the record, and
    the segment is empty again."""
    log = UsageLog(store, journal, commit_timeout_s=30)
    await log.start()
    try:
        one = usage_record()
        async with locked(database_url):
            await log.record(one)
            assert [decode(line) for line in b"".join(segments(journal)).splitlines()] == [one]
            assert not await log.flush(timeout_s=0.05)
        assert await log.flush()
        assert await stored_ids(database_url) == [one.record_id]
        assert segments(journal) == [b"", b""]
    finally:
        await log.close()
    assert not any(path.exists() for path in WriteAhead.paths_for(journal))


async def test_without_write_ahead_record_returns_once_committed(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """write_ahead=False: when record() returns, another connection already reads the record."""
    log = UsageLog(store, journal, write_ahead=False)
    await log.start()
    try:
        one = usage_record()
        await log.record(one)
        assert await stored_ids(database_url) == [one.record_id]
        assert not any(path.exists() for path in WriteAhead.paths_for(journal))
    finally:
        await log.close()


async def test_segments_empty_as_batches_commit_under_continuous_load(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """Records keep arriving while batches commit (the queue is never empty): the writer
    switches segments before each batch, so the segments hold only what is not committed yet
    (the last two bursts), never the whole run, and both are empty once the last batch is."""
    log = UsageLog(store, journal, max_batch=20)
    await log.start()
    records = [usage_record() for _ in range(400)]
    largest = 0
    try:
        for start in range(0, len(records), 10):
            for record in records[start : start + 10]:
                assert log.submit(record) is None
            for _ in range(5000):  # until all but this burst is committed (bounded: 5 s)
                if log.committed >= start:
                    break
                await asyncio.sleep(0.001)
            largest = max(largest, sum(content.count(b"\n") for content in segments(journal)))
        assert largest <= 20
        assert await log.flush()
        assert segments(journal) == [b"", b""]
        assert log.batches > 1
        assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
    finally:
        await log.close()


async def test_records_written_ahead_by_a_crashed_process_are_stored_at_start(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """Segments a process left behind (kill -9 before their commit, a torn last line) are
    stored by the next start, once, and removed."""
    crashed = [usage_record() for _ in range(5)]
    first, second = WriteAhead.paths_for(journal)
    first.write_bytes(b"".join(encode(r) for r in crashed[:2]))
    second.write_bytes(b"".join(encode(r) for r in crashed[2:]) + b'{"record_id": "to')
    log = UsageLog(store, journal)
    await log.start()
    try:
        assert log.replayed == 5
        assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in crashed)
    finally:
        await log.close()
    assert journal_files(journal) == {}
    assert not first.exists()
    assert not second.exists()


async def test_records_are_journaled_while_the_database_is_unreachable_and_replayed_once(
    store: UsageStore, database_url: str, journal: Path, tmp_path: Path
) -> None:
    """With the database unreachable record() still returns: the records are synced to the
    journal. The next UsageLog.start() on the database stores each exactly once, also those the
    database already had (a commit whose answer was lost), and removes the journal."""
    down = await open_usage_store(unreachable_url(database_url, tmp_path))
    records = [usage_record() for _ in range(50)]
    first = UsageLog(down, journal)
    await first.start()
    try:
        await asyncio.gather(*(first.record(record) for record in records))
        assert await first.flush()
        assert (first.committed, first.journaled, first.spilled) == (0, 50, True)
    finally:
        await first.close()
        await down.close()
    assert journal_files(journal) == {journal.name: 50}
    await store.write(records[:20])

    second = UsageLog(store, journal)
    await second.start()
    await second.close()
    assert second.replayed == 50
    assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
    assert journal_files(journal) == {}

    third = UsageLog(store, journal)
    await third.start()
    await third.close()
    assert third.replayed == 0


async def test_a_running_log_replays_its_journal_when_the_database_answers_again(
    usage_log: UsageLog, store: UsageStore, database_url: str
) -> None:
    """Records made during an outage are journaled; once the database answers, replay() stores
    them and new records are committed to the database again, not journaled."""
    during = [usage_record() for _ in range(30)]
    async with outage(store, database_url):
        await asyncio.gather(*(usage_log.record(record) for record in during))
        assert await usage_log.flush()
        assert (usage_log.journaled, usage_log.spilled) == (30, True)
        assert not await usage_log.replay()
    assert await usage_log.replay()
    after = usage_record()
    await usage_log.record(after)
    assert await usage_log.flush()
    assert (usage_log.committed, usage_log.journaled, usage_log.replayed) == (1, 30, 30)
    expected = sorted(r.record_id for r in [*during, after])
    assert sorted(await stored_ids(database_url)) == expected


async def test_after_a_spill_the_log_retries_every_retry_s_and_replays_by_itself(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """Once records were journaled the log tries the database again after each retry_s (the
    injected wait); a try during the outage fails and waits again; the first try after it
    stores the journal without anyone calling replay()."""
    gate = Gate()
    log = UsageLog(store, journal, retry_s=7, sleep=gate)
    await log.start()
    try:
        records = [usage_record() for _ in range(20)]
        async with outage(store, database_url):
            await asyncio.gather(*(log.record(record) for record in records))
            await gate.reached(1)
            await gate.open()
            await gate.reached(2)  # that try failed: the database is still away
            assert log.spilled
        await gate.open()
        async with asyncio.timeout(10):
            await log.wait_replayed()
        assert gate.delays == [7, 7]
        assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
    finally:
        await log.close()


async def test_a_commit_that_hangs_past_its_timeout_is_journaled_and_stored_once(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """A commit stuck behind another transaction's lock: after commit_timeout_s its batch is
    journaled and flush() returns; replayed once the lock is gone, each record is stored once,
    although the stuck commit may have gone through as well."""
    log = UsageLog(store, journal, commit_timeout_s=0.2)
    await log.start()
    try:
        records = [usage_record() for _ in range(5)]
        async with locked(database_url):
            await asyncio.gather(*(log.record(record) for record in records))
            assert await log.flush()
            assert (log.committed, log.journaled) == (0, 5)
        assert await log.replay()
        assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
    finally:
        await log.close()


async def test_a_full_queue_makes_the_caller_wait_instead_of_dropping(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """With max_queued records waiting for the store, the next caller waits for its record's
    commit (back-pressure); nothing is dropped, and every record is stored once the database
    moves again."""
    log = UsageLog(store, journal, max_queued=3, commit_timeout_s=30)
    await log.start()
    try:
        records = [usage_record() for _ in range(4)]
        async with locked(database_url):
            assert [log.submit(record) for record in records[:3]] == [None, None, None]
            fourth = asyncio.create_task(log.record(records[3]))
            for _ in range(20):
                await asyncio.sleep(0)  # let the writer take its batch and the fourth wait
            assert not fourth.done()
            assert log.depth == 4
        await fourth
        assert await log.flush()
        assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
    finally:
        await log.close()


async def test_close_commits_everything_queued(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """Records handed over with submit() and never awaited are committed by close()."""
    log = UsageLog(store, journal, max_batch=50)
    await log.start()
    records = [usage_record() for _ in range(300)]
    assert all(log.submit(record) is None for record in records)
    await log.close(timeout_s=10)
    assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in records)
    assert (log.committed, log.journaled) == (300, 0)
    assert journal_files(journal) == {}


async def test_a_record_the_database_refuses_is_set_aside_and_the_rest_committed(
    usage_log: UsageLog, database_url: str
) -> None:
    """A record whose content the database refuses (a number past 64 bits) neither takes its
    batch down nor blocks the journal: it goes to the rejects file, the others are committed."""
    good = [usage_record() for _ in range(10)]
    bad = usage_record(input_tokens=2**64)
    await asyncio.gather(*(usage_log.record(record) for record in [*good[:5], bad, *good[5:]]))
    assert await usage_log.flush()
    assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in good)
    assert (usage_log.rejected, usage_log.journaled, usage_log.spilled) == (1, 0, False)
    (line,) = usage_log.rejects_path.read_text().splitlines()
    assert bad.record_id in line


async def test_an_unstorable_record_journaled_during_an_outage_is_set_aside_on_replay(
    store: UsageStore, database_url: str, journal: Path, tmp_path: Path
) -> None:
    """A record no database can store (a lone surrogate in its user) still goes through the
    journal intact; on replay it is set aside and the records around it are stored."""
    down = await open_usage_store(unreachable_url(database_url, tmp_path))
    good = [usage_record() for _ in range(4)]
    bad = usage_record(user="\udc80")
    first = UsageLog(down, journal)
    await first.start()
    try:
        await asyncio.gather(*(first.record(record) for record in [*good[:2], bad, *good[2:]]))
    finally:
        await first.close()
        await down.close()
    second = UsageLog(store, journal)
    await second.start()
    await second.close()
    assert (second.replayed, second.rejected) == (4, 1)
    assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in good)
    assert journal_files(journal) == {f"{journal.name}.rejected": 1}


async def test_journals_of_crashed_processes_are_adopted_and_live_ones_left_alone(
    store: UsageStore, database_url: str, journal: Path
) -> None:
    """A journal slot held by a live log is skipped (a second log takes another slot); slots no
    process holds are journals of crashed processes: their records are replayed, a torn last
    line is skipped, and the files are removed."""
    live = UsageLog(store, journal)
    await live.start()
    crashed = [usage_record() for _ in range(6)]
    orphan, other_orphan = (journal.with_name(f"{journal.name}.{n}") for n in (2, 3))
    orphan.write_bytes(b"".join(encode(r) for r in crashed[:3]) + b'{"record_id": "to')
    other_orphan.write_bytes(b"".join(encode(r) for r in crashed[3:]))
    second = UsageLog(store, journal)
    try:
        await second.start()
        assert second.replayed == 6
        assert journal_files(journal) == {journal.name: 0, orphan.name: 0}  # the live one kept
    finally:
        await second.close()
        await live.close()
    assert journal_files(journal) == {}
    assert sorted(await stored_ids(database_url)) == sorted(r.record_id for r in crashed)


async def test_a_record_neither_stored_nor_journaled_raises_and_stays_queued(
    database_url: str, tmp_path: Path
) -> None:
    """No database and no writable journal: record() raises UsageNotDurable rather than claim
    durability, and the record stays queued (it counts in depth) rather than being dropped."""
    down = await open_usage_store(unreachable_url(database_url, tmp_path))
    blocker = tmp_path / "journal-blocker"
    blocker.write_text("")
    log = UsageLog(down, blocker / "usage.pending.jsonl", sleep=parked)
    await log.start()
    try:
        with pytest.raises(UsageNotDurable):
            await log.record(usage_record())
        assert log.depth == 1
    finally:
        await log.close(timeout_s=0)
        await down.close()


def test_the_journal_lives_beside_the_sqlite_file_or_is_named_after_the_database(
    tmp_path: Path,
) -> None:
    """usage.db → usage.db.pending.jsonl; for PostgreSQL one name per host, port and database
    (never the credentials) in the given directory."""
    assert journal_path_for("sqlite:////data/usage.db") == Path("/data/usage.db.pending.jsonl")
    path = journal_path_for("postgresql://u:secret@db:5432/usage", tmp_path)
    assert path.parent == tmp_path
    assert "secret" not in path.name
    assert path == journal_path_for("postgresql://other:pw@db:5432/usage", tmp_path)
    assert path != journal_path_for("postgresql://u:secret@db:5432/other", tmp_path)
    assert journal_path_for("sqlite:///:memory:", tmp_path).parent == tmp_path
