"""Usage records in SQL: SQLite (the embedded default, WAL) or PostgreSQL, one schema.

The schema is versioned: :data:`MIGRATIONS` is applied in order on start and the version kept
in ``sidecar_schema``. Time is stored as integer microseconds since the epoch (UTC) and money
as integer micro-dollars, so both databases sum exactly and compare the same way.

A database that cannot be reached at start is reported by :meth:`health` and connected to
again on the next use (at most every ``retry_s``), never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg

from sidecar.backends import Health, UsageGroup, UsageRecord

log = logging.getLogger(__name__)

COLUMNS = (
    "record_id", "time_us", "request_id", "user_id", "operation", "model_requested",
    "model_served", "provider", "input_tokens", "cached_input_tokens", "output_tokens", "images",
    "cost_micros", "cache_hit", "saved_micros", "fallback", "outcome", "estimated",
    "upstream_calls",
)  # fmt: skip

# (version, statements); ``{id}`` is the dialect's auto-increment primary key.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE usage_records (
                id {id},
                record_id TEXT NOT NULL UNIQUE,
                time_us BIGINT NOT NULL,
                request_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                operation TEXT NOT NULL,
                model_requested TEXT NOT NULL,
                model_served TEXT NOT NULL,
                provider TEXT NOT NULL,
                input_tokens BIGINT NOT NULL DEFAULT 0,
                cached_input_tokens BIGINT NOT NULL DEFAULT 0,
                output_tokens BIGINT NOT NULL DEFAULT 0,
                images INTEGER NOT NULL DEFAULT 0,
                cost_micros BIGINT,
                cache_hit SMALLINT NOT NULL DEFAULT 0,
                saved_micros BIGINT NOT NULL DEFAULT 0,
                fallback TEXT,
                outcome TEXT NOT NULL,
                estimated SMALLINT NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX usage_user_time ON usage_records (user_id, time_us)",
        ),
    ),
    (
        2,
        ("ALTER TABLE usage_records ADD COLUMN upstream_calls INTEGER NOT NULL DEFAULT 1",),
    ),
)

_BREAKDOWN = """
SELECT operation, model_served, COUNT(*), COALESCE(SUM(input_tokens), 0),
       COALESCE(SUM(output_tokens), 0), COALESCE(SUM(images), 0), COALESCE(SUM(cost_micros), 0),
       SUM(CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END),
       SUM(cache_hit), COALESCE(SUM(saved_micros), 0),
       SUM(CASE WHEN fallback IS NULL THEN 0 ELSE 1 END),
       SUM(CASE WHEN fallback IS NULL THEN 0 ELSE COALESCE(cost_micros, 0) END),
       SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END),
       SUM(CASE WHEN outcome = 'success' THEN 0 ELSE COALESCE(cost_micros, 0) END),
       SUM(CASE WHEN upstream_calls > 1 THEN 1 ELSE 0 END),
       SUM(CASE WHEN upstream_calls > 1 THEN upstream_calls - 1 ELSE 0 END)
FROM usage_records WHERE user_id = {0} AND time_us >= {1} AND time_us < {2}
GROUP BY operation, model_served ORDER BY 7 DESC, 3 DESC, 1, 2
"""


def to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def row_of(record: UsageRecord) -> tuple[Any, ...]:
    return (
        record.record_id,
        to_us(record.time),
        record.request_id,
        record.user,
        record.operation,
        record.model_requested,
        record.model_served,
        record.provider,
        record.input_tokens,
        record.cached_input_tokens,
        record.output_tokens,
        record.images,
        record.cost_micros,
        int(record.cache_hit),
        record.saved_micros,
        record.fallback,
        record.outcome,
        int(record.estimated),
        record.upstream_calls,
    )


# A write is one statement, so one round trip: committed on its own (SQLite in autocommit mode,
# PostgreSQL outside a transaction block) and all or nothing. Rows already stored are skipped:
# writing a record again (a journal replayed) changes nothing.
_INSERT = f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "
_SKIP_STORED = " ON CONFLICT (record_id) DO NOTHING"

# SQLite binds at most 32766 values per statement (999 before 3.32): rows per statement.
SQLITE_ROWS = (32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999) // len(COLUMNS)


# SQLite batches up to this many rows are committed on the event loop (a few hundred µs at most).
INLINE_ROWS = 256
CHECKPOINT_ROWS = 1024  # rows committed on the event loop between two checkpoints in the thread


@functools.lru_cache(maxsize=128)
def _sqlite_insert(rows: int) -> str:
    row = f"({', '.join('?' * len(COLUMNS))})"
    return _INSERT + "VALUES " + ", ".join([row] * rows) + _SKIP_STORED


# PostgreSQL: one array per column, whatever the number of rows (one prepared statement).
_PG_TYPES = (
    "text", "bigint", "text", "text", "text", "text", "text", "text", "bigint", "bigint",
    "bigint", "integer", "bigint", "smallint", "bigint", "text", "text", "smallint", "integer",
)  # fmt: skip
_PG_INSERT = (
    _INSERT
    + "SELECT * FROM unnest("
    + ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(_PG_TYPES, 1))
    + ")"
    + _SKIP_STORED
)


def _groups(rows: Sequence[Sequence[Any]]) -> list[UsageGroup]:
    return [UsageGroup(str(r[0]), str(r[1]), *(int(v or 0) for v in r[2:])) for r in rows]


class _Dialect(Protocol):
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]: ...


async def migrate(db: _Dialect, id_column: str) -> int:
    """Apply the migrations not applied yet; the schema version afterwards."""
    await db.execute("CREATE TABLE IF NOT EXISTS sidecar_schema (version INTEGER NOT NULL)")
    rows = await db.fetch("SELECT MAX(version) FROM sidecar_schema")
    current = int(rows[0][0] or 0) if rows else 0
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            await db.execute(statement.format(id=id_column))
        await db.execute(f"INSERT INTO sidecar_schema (version) VALUES ({version})")
        current = version
    return current


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``; ``:memory:``."""
    return url.removeprefix("sqlite://").removeprefix("/") or ":memory:"


class SqliteUsage:
    """The embedded default: a WAL file, an aiosqlite connection (its own thread) for reads,
    checkpoints and writes that may wait, and a plain connection for small writes.

    ``synchronous=NORMAL`` with WAL keeps every committed transaction through a process crash
    (``kill -9``); only an OS crash or power loss can take the last ones. A commit is then
    CPU work only (no fsync): ~30 µs for a small batch, less than the trip to aiosqlite's thread
    and back (~200 µs), so batches up to :data:`INLINE_ROWS` rows are committed on the event loop
    by the plain connection. It never waits there: it does not checkpoint (the thread does,
    every :data:`CHECKPOINT_ROWS` rows) and a busy database (another writer) sends the batch to
    the thread, which waits for its turn. So does a checkpoint that is still running after
    another :data:`CHECKPOINT_ROWS` rows: batches then queue behind it, which bounds the WAL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._db: aiosqlite.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._in_transaction = False
        self._error: str | None = None
        self._since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._holding = False  # commits wait for the checkpoint's last round

    async def open(self) -> None:
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: a statement is its own transaction unless inside BEGIN ... COMMIT.
            db = await aiosqlite.connect(self.path, isolation_level=None)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("BEGIN IMMEDIATE")
            await migrate(_SqliteDialect(db), "INTEGER PRIMARY KEY AUTOINCREMENT")
            await db.execute("COMMIT")
            if self.path != ":memory:":  # (another connection would open another database)
                self._inline = sqlite3.connect(self.path, timeout=0, isolation_level=None)
                self._inline.execute("PRAGMA synchronous=NORMAL")
                self._inline.execute("PRAGMA wal_autocheckpoint=0")
        except (OSError, aiosqlite.Error) as exc:
            self._error = f"{self.path}: {exc}"
            log.error("usage database %s cannot be opened: %s", self.path, exc)
            return
        self._db = db

    async def write(self, records: Sequence[UsageRecord]) -> None:
        db = self._require()
        if 0 < len(records) <= INLINE_ROWS and self._write_inline(records):
            return
        async with self._lock:
            if self._in_transaction:  # a larger write was cancelled: end what it began
                with contextlib.suppress(sqlite3.OperationalError):  # (or had committed)
                    await db.execute("ROLLBACK")
                self._in_transaction = False
            if len(records) <= SQLITE_ROWS:  # one statement, one trip to aiosqlite's thread
                if records:
                    await db.execute(_sqlite_insert(len(records)), _values(records))
                return
            self._in_transaction = True  # stays set if this is cancelled
            try:
                await db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(records), SQLITE_ROWS):
                    chunk = records[start : start + SQLITE_ROWS]
                    await db.execute(_sqlite_insert(len(chunk)), _values(chunk))
                await db.execute("COMMIT")
            except Exception:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                self._in_transaction = False
                raise
            self._in_transaction = False

    def _write_inline(self, records: Sequence[UsageRecord]) -> bool:
        """Commit on the event loop if the database is free now; False if it is not."""
        if self._inline is None or self._lock.locked() or self._holding:
            return False  # behind the thread's write, or its checkpoint's last round
        if self._checkpoint is not None and self._since_checkpoint >= CHECKPOINT_ROWS:
            return False  # a slow checkpoint: wait behind it rather than grow the WAL further
        try:
            self._inline.execute(_sqlite_insert(len(records)), _values(records))
        except sqlite3.OperationalError:  # busy: another writer holds the lock
            return False
        self._since_checkpoint += len(records)
        if self._since_checkpoint >= CHECKPOINT_ROWS and self._checkpoint is None:
            self._since_checkpoint = 0
            self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint())
        return True

    async def _run_checkpoint(self) -> None:
        """Copy the WAL into the database file while commits go on, then again with commits
        held back (short: it copies only what came meanwhile) so that it completes and the next
        commit starts the WAL over instead of growing it."""
        try:
            for holding in (False, True):
                if self._db is None:
                    return
                self._holding = holding
                await self._db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        except aiosqlite.Error as exc:  # the next one will catch up
            log.warning("usage database %s: checkpoint failed: %s", self.path, exc)
        finally:
            self._checkpoint, self._holding = None, False

    async def breakdown(self, user: str, since: datetime, until: datetime) -> list[UsageGroup]:
        db = self._require()
        sql = _BREAKDOWN.format("?", "?", "?")
        async with db.execute(sql, (user, to_us(since), to_us(until))) as cursor:
            return _groups(list(await cursor.fetchall()))

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise ConnectionError(f"usage database unavailable: {self._error}")
        return self._db

    async def health(self) -> Health:
        if self._db is None:
            return Health("unhealthy", self._error or "not opened", None, "sqlite")
        started = time.perf_counter()
        async with self._db.execute("SELECT 1") as cursor:
            await cursor.fetchone()
        return Health("healthy", self.path, (time.perf_counter() - started) * 1000, "sqlite")

    async def close(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._db is not None:
            await self._db.close()
            self._db = None


class _SqliteDialect:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def execute(self, sql: str, *args: Any) -> None:
        await self.db.execute(sql, args)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        async with self.db.execute(sql, args) as cursor:
            return list(await cursor.fetchall())


class PostgresUsage:
    """PostgreSQL through an asyncpg pool, created at start and again after a failure."""

    def __init__(self, url: str, *, retry_s: float = 5.0, min_size: int = 1, max_size: int = 4):
        self.url = url
        self.retry_s = retry_s
        self.min_size, self.max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._error: str | None = None
        self._tried_at = -retry_s
        self._connecting = asyncio.Lock()

    async def open(self) -> None:
        await self._connect()

    async def _connect(self) -> asyncpg.Pool | None:
        async with self._connecting:
            if self._pool is not None:
                return self._pool
            if time.monotonic() - self._tried_at < self.retry_s:
                return None
            self._tried_at = time.monotonic()
            try:
                pool = await asyncpg.create_pool(
                    self.url,
                    min_size=self.min_size,
                    max_size=self.max_size,
                    timeout=2,
                    reset=_keep_session,
                )
                async with pool.acquire() as conn:
                    await migrate(_PostgresDialect(conn), "BIGSERIAL PRIMARY KEY")
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                self._error = f"{type(exc).__name__}: {exc}"
                log.error("usage database (PostgreSQL) unavailable: %s", self._error)
                return None
            self._pool, self._error = pool, None
            return pool

    async def _require(self) -> asyncpg.Pool:
        pool = self._pool or await self._connect()
        if pool is None:
            raise ConnectionError(f"usage database unavailable: {self._error}")
        return pool

    async def write(self, records: Sequence[UsageRecord]) -> None:
        pool = await self._require()
        if records:
            columns = zip(*(row_of(record) for record in records), strict=True)
            await pool.execute(_PG_INSERT, *(list(column) for column in columns))

    async def breakdown(self, user: str, since: datetime, until: datetime) -> list[UsageGroup]:
        pool = await self._require()
        sql = _BREAKDOWN.format("$1", "$2", "$3")
        rows = await pool.fetch(sql, user, to_us(since), to_us(until))
        return _groups([tuple(row) for row in rows])

    async def health(self) -> Health:
        started = time.perf_counter()
        try:
            pool = await self._require()
            await pool.fetchval("SELECT 1")
        except (ConnectionError, OSError, asyncpg.PostgresError) as exc:
            return Health("unhealthy", str(exc), None, "postgresql")
        return Health("healthy", "connected", (time.perf_counter() - started) * 1000, "postgresql")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _keep_session(conn: Any) -> None:
    """A connection goes back to the pool without the reset query (asyncpg still rolls back an
    open transaction): these connections hold no session state (no SET, LISTEN or advisory
    lock), and it saves a round trip per write."""


def _values(records: Sequence[UsageRecord]) -> list[Any]:
    return [value for record in records for value in row_of(record)]


class _PostgresDialect:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return [tuple(row) for row in await self.conn.fetch(sql, *args)]
