"""The durable usage log: a billed call's record is on disk before its reply's last bytes leave.

::

    record() ──▶ queue (≤ max_queued; full: record waits, never drops)
                   │ one writer task takes everything queued (≤ max_batch) as soon as the
                   ▼ previous commit ended: group commit, no timer
                 store.write(batch) ── one transaction ──▶ committed: every waiter resumes
                   │ the store is down, or slower than commit_timeout_s
                   ▼
                 journal: JSON lines, fdatasync'd per batch ──▶ durable too: waiters resume;
                   ▲                                            later batches go here as well
                   └── replayed into the store when it answers again (every retry_s), and
                       at start(); then truncated. Replays are idempotent: ``record_id``.

A record the database refuses for its content (a NUL in a PostgreSQL string, an integer out of
range) would block the journal forever; it is set aside in ``<journal>.rejected`` instead,
logged and counted, never retried and never dropped.

The journal is ``journal_path`` or, when another live process holds that file (two sidecars
with one configuration), ``journal_path.1``, ``.2``... (``flock``). ``start()`` adopts the slots
no live process holds: journals left by a crash, replayed with this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from sidecar.backends import UsageRecord, UsageStore
from sidecar.backends.usage import sqlite_path

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# "This record can never be stored", as opposed to "the store is away": set aside, not retried.
BAD_DATA: tuple[type[BaseException], ...] = (
    TypeError,
    OverflowError,  # sqlite3: an int past 64 bits
    UnicodeError,  # a lone surrogate
    sqlite3.IntegrityError,
    sqlite3.DataError,
    asyncpg.exceptions.DataError,  # SQLSTATE class 22 (a NUL in text, a number out of range)
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions._base.DataError,  # asyncpg's own check of an argument (int64 range)
)
_FIELDS = frozenset(field.name for field in dataclasses.fields(UsageRecord))

Entry = tuple[UsageRecord, asyncio.Future[None] | None]


class UsageNotDurable(Exception):
    """Neither the store nor the journal took the record; it stays queued and is tried again."""


def journal_path_for(database_url: str, directory: Path | None = None) -> Path:
    """The default journal: beside a SQLite file (``usage.db`` → ``usage.db.pending.jsonl``),
    else in ``directory`` (PostgreSQL: the working directory; ``:memory:``: the temporary one)
    under a name of the database's address, so two configurations never replay into each
    other's database."""
    if not database_url.startswith(("postgresql://", "postgres://")):
        path = sqlite_path(database_url)
        if path != ":memory:":
            return Path(path).with_name(Path(path).name + ".pending.jsonl")
        directory = directory or Path(tempfile.gettempdir())
    address = urlsplit(database_url)
    where = f"{address.hostname}:{address.port}{address.path}"  # no credentials
    digest = hashlib.sha256(where.encode()).hexdigest()[:12]
    return (directory or Path.cwd()) / f"sidecar-usage-{digest}.pending.jsonl"


def encode(record: UsageRecord) -> bytes:
    data: dict[str, Any] = {name: getattr(record, name) for name in _FIELDS}
    data["time"] = record.time.isoformat()
    try:
        return orjson.dumps(data) + b"\n"
    except TypeError:  # orjson refuses lone surrogates; json escapes them
        return json.dumps(data).encode() + b"\n"


def decode(line: bytes) -> UsageRecord | None:
    """A journal line's record; None for a line that is not one (torn by a crash mid-write)."""
    try:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            data = json.loads(line)
        fields = {key: value for key, value in data.items() if key in _FIELDS}
        fields["time"] = datetime.fromisoformat(fields["time"])
        return UsageRecord(**fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class Journal:
    """One append-only file of records, owned by this process while it holds its ``flock``."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd
        self.size = os.fstat(fd).st_size
        if self.size and os.pread(fd, 1, self.size - 1) != b"\n":
            self._write(b"\n")  # a crash tore the last line: keep it apart from the next ones

    @classmethod
    def claim(cls, base: Path) -> Journal:
        """The first slot no live process holds, with every other free slot's records moved
        into it (journals of crashed processes)."""
        base.parent.mkdir(parents=True, exist_ok=True)
        slots = sorted(
            (p for p in base.parent.glob(f"{glob.escape(base.name)}.*") if p.suffix[1:].isdigit()),
            key=lambda p: int(p.suffix[1:]),
        )
        journal: Journal | None = None
        for slot in [base, *slots]:
            fd = _lock(slot)
            if fd is None:
                continue
            if journal is None:
                journal = cls(slot, fd)
                continue
            try:  # an orphan: adopt its records, then remove it
                orphan = os.pread(fd, os.fstat(fd).st_size, 0)
                if orphan:
                    journal._write(orphan if orphan.endswith(b"\n") else orphan + b"\n")
                os.unlink(slot)
            finally:
                os.close(fd)
        number = len(slots) + 1
        while journal is None:
            slot = base.with_name(f"{base.name}.{number}")
            if not slot.exists() and (fd := _lock(slot)) is not None:
                journal = cls(slot, fd)
            number += 1
        _sync_directory(base.parent)
        return journal

    def append(self, records: Sequence[UsageRecord]) -> None:
        self._write(b"".join(encode(record) for record in records))

    def _write(self, data: bytes) -> None:
        start = self.size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fdatasync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)  # no half line left behind
            raise
        finally:
            self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, limit: int = 1 << 20) -> tuple[list[UsageRecord], int]:
        """The whole lines from ``offset`` (about ``limit`` bytes); the offset after them."""
        data = os.pread(self._fd, limit, offset)
        end = data.rfind(b"\n") + 1
        if end == 0:
            return ([], offset) if len(data) < limit else self.read(offset, limit * 2)
        records: list[UsageRecord] = []
        for line in data[:end].splitlines():
            if line.strip():
                record = decode(line)
                if record is None:
                    log.warning("usage journal %s: skipped a torn line", self.path)
                else:
                    records.append(record)
        return records, offset + end

    def truncate(self) -> None:
        os.ftruncate(self._fd, 0)
        self.size = 0

    def close(self) -> None:
        """Release the slot; an empty journal is removed first (while still held)."""
        if self.size == 0:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self._fd)


def reject(path: Path, record: UsageRecord, reason: BaseException) -> None:
    """Set a record the database refuses aside, for a human: appended to ``path``, synced."""
    line = {"error": f"{type(reason).__name__}: {reason}", "record": encode(record).decode()}
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")
        file.flush()
        os.fdatasync(file.fileno())


def _lock(path: Path) -> int | None:
    """An open descriptor holding ``path``'s exclusive flock; None if a live process holds it."""
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its owner removed it between our open and our lock: open it anew
    raise OSError(f"usage journal {path} keeps being replaced")


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class UsageLog:
    """Durable, group-committed usage records in front of a :class:`UsageStore`.

    ``record()`` returns once the record is committed to the store or, while the store is down,
    synced to the journal: either way it survives ``kill -9``. ``submit()`` hands a record over
    and returns that moment as a future, so a caller can overlap the wait with other work.
    """

    def __init__(
        self,
        store: UsageStore,
        journal_path: str | Path,
        *,
        max_queued: int = 10_000,
        max_batch: int = 1_000,
        commit_timeout_s: float = 2.0,
        retry_s: float = 5.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.journal_path = Path(journal_path)
        self.max_queued, self.max_batch = max_queued, max_batch
        self.commit_timeout_s, self.retry_s = commit_timeout_s, retry_s
        self._sleep = sleep
        self.committed = 0  # records written to the store by the writer
        self.journaled = 0  # records synced to the journal instead
        self.replayed = 0  # journaled records written to the store later
        self.rejected = 0  # records the database refused for their content (set aside)
        self.batches = 0  # store transactions and journal appends of the writer
        self.largest_batch = 0
        self._queue: deque[Entry] = deque()
        self._inflight: list[Entry] = []
        self._room = asyncio.Semaphore(max_queued)  # one slot per record until it is durable
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._replayed = asyncio.Event()  # set while the journal is empty
        self._replayed.set()
        self._journal: Journal | None = None
        self._journal_lock = asyncio.Lock()
        self._replaying = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._appending: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def depth(self) -> int:
        """Records handed over and not yet durable."""
        return len(self._queue) + len(self._inflight)

    @property
    def spilled(self) -> bool:
        """The journal holds records the store has not taken yet."""
        return self._journal is not None and self._journal.size > 0

    @property
    def journal_bytes(self) -> int:
        """The journal's size: records waiting for the store (for ``/readyz``)."""
        return 0 if self._journal is None else self._journal.size

    @property
    def rejects_path(self) -> Path:
        return self.journal_path.with_name(self.journal_path.name + ".rejected")

    async def start(self) -> None:
        """Claim the journal, replay what earlier runs left in it, start the writer."""
        try:
            self._journal = await asyncio.to_thread(Journal.claim, self.journal_path)
        except OSError as exc:  # like an unreachable database: reported, not fatal
            log.error("usage journal %s cannot be opened: %s", self.journal_path, exc)
        if self.spilled:
            self._replayed.clear()
            if not await self.replay():
                self._recover_later()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def record(self, record: UsageRecord) -> None:
        """Hand ``record`` over and return once it is durable (committed, or journaled).

        Raises :class:`UsageNotDurable` when neither the store nor the journal could take it
        (it stays queued). Cancelling the wait does not withdraw a record handed over.
        """
        await (await self.submit(record))

    async def submit(self, record: UsageRecord) -> asyncio.Future[None]:
        """Hand ``record`` over (waits only while ``max_queued`` records are not yet durable);
        the future completes once it is durable, as :meth:`record` returns."""
        if self._stopped():
            raise RuntimeError("the usage log is not running")
        await self._room.acquire()
        if self._stopped():  # woken by close()
            self._room.release()
            raise RuntimeError("the usage log is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((record, done))
        self._idle.clear()
        self._wake.set()
        return done

    async def wait_replayed(self) -> None:
        """Until the journal is empty: every record handed over so far is in the store."""
        await self._replayed.wait()

    def _stopped(self) -> bool:
        return self._closed or self._writer is None

    async def replay(self) -> bool:
        """Write the journal into the store and empty it; True when it is empty afterwards.

        Records the store already holds (same ``record_id``) are not stored twice.
        """
        journal = self._journal
        if journal is None:
            return True
        async with self._replaying:
            offset = 0
            while True:
                async with self._journal_lock:
                    if offset >= journal.size:
                        journal.truncate()
                        self._replayed.set()
                        return True
                try:
                    records, next_offset = await asyncio.to_thread(journal.read, offset)
                    for start in range(0, len(records), self.max_batch):
                        chunk = records[start : start + self.max_batch]
                        rejected = self.rejected
                        if await self._store(chunk):
                            return False
                        self.replayed += len(chunk) - (self.rejected - rejected)
                except Exception as exc:
                    log.info("usage journal %s not replayed yet: %s", journal.path, exc)
                    return False
                if next_offset == offset and records == []:
                    return False  # cannot happen: read() returns whole lines
                offset = next_offset

    async def close(self, timeout_s: float = 5.0) -> None:
        """Commit what is queued for at most ``timeout_s``, journal the rest, stop."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            except TimeoutError:
                log.warning("usage log: %d records not committed in time, journaling", self.depth)
            await _stop(self._writer)
        if self._recovery is not None:
            await _stop(self._recovery)
        if self._appending is not None and not self._appending.done():
            with contextlib.suppress(OSError):
                await self._appending  # the writer's last append: its records are in `left` too
        left = [*self._inflight, *self._queue]  # in flight: maybe committed too (idempotent)
        self._inflight, self._queue = [], deque()
        if left:
            try:
                await self._spill([record for record, _ in left])
                _resolve(left)
            except OSError as exc:
                log.error(
                    "usage log closed with %d records neither committed nor journaled (%s): %s",
                    len(left), exc, [encode(record).decode() for record, _ in left],
                )  # fmt: skip
                _resolve(left, UsageNotDurable(str(exc)))
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        for _ in range(self.max_queued):
            self._room.release()  # a submit() still waiting for room wakes up and raises

    # --- the writer -----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            count = min(len(self._queue), self.max_batch)
            batch = self._inflight = [self._queue.popleft() for _ in range(count)]
            self.batches += 1
            self.largest_batch = max(self.largest_batch, count)
            try:
                await self._persist(batch)
            except Exception:  # a bug must not stop the writer nor lose the batch
                log.exception("usage log writer failed; its batch is queued again")
                self._inflight = []
                self._queue.extendleft(reversed(batch))
                await self._sleep(self.retry_s)
            self._inflight = []  # not on cancellation: close() journals the batch in flight

    async def _persist(self, batch: list[Entry]) -> None:
        records = [record for record, _ in batch]
        if not self.spilled:
            records = await self._store(records)
            self.committed += len(batch) - len(records)
        try:
            if records:
                await self._spill(records)
        except OSError as exc:
            log.error("usage records could be neither committed nor journaled: %s", exc)
            _resolve(batch, UsageNotDurable(str(exc)))
            self._inflight = []
            self._queue.extendleft((record, None) for record, _ in reversed(batch))
            await self._sleep(self.retry_s)
            return
        _resolve(batch)
        for _ in batch:
            self._room.release()

    async def _store(self, records: list[UsageRecord]) -> list[UsageRecord]:
        """Write ``records`` in one transaction; those still to store ([] when all were)."""
        try:
            async with asyncio.timeout(self.commit_timeout_s):
                await self.store.write(records)
        except BAD_DATA:
            return await self._one_by_one(records)
        except Exception as exc:
            if not self.spilled:
                log.warning(
                    "usage store unavailable (%s: %s): journaling records in %s until it answers",
                    type(exc).__name__, exc, self._journal.path if self._journal else "(none)",
                )  # fmt: skip
            return records
        return []

    async def _one_by_one(self, records: list[UsageRecord]) -> list[UsageRecord]:
        """A batch the database refused: store each record alone, set aside those it refuses."""
        for index, record in enumerate(records):
            try:
                async with asyncio.timeout(self.commit_timeout_s):
                    await self.store.write([record])
            except BAD_DATA as exc:
                log.error("usage record set aside in %s: %s", self.rejects_path, exc)
                try:
                    await asyncio.to_thread(reject, self.rejects_path, record, exc)
                except OSError:
                    return records[index:]  # journaled: tried again when replayed
                self.rejected += 1
            except Exception:
                return records[index:]
        return []

    async def _spill(self, records: list[UsageRecord]) -> None:
        # Shielded: a writer cancelled by close() leaves the append to finish (close awaits it)
        # rather than its thread writing to a descriptor close() is about to release.
        self._appending = asyncio.ensure_future(self._append(records))
        await asyncio.shield(self._appending)

    async def _append(self, records: list[UsageRecord]) -> None:
        if self._journal is None:
            raise OSError(f"usage journal {self.journal_path} is not open")
        journal = self._journal
        async with self._journal_lock:
            await asyncio.to_thread(journal.append, records)
            self._replayed.clear()
        self.journaled += len(records)
        self._recover_later()

    def _recover_later(self) -> None:
        if self._recovery is None and not self._closed:
            self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        while True:
            await self._sleep(self.retry_s)
            if await self.replay():
                log.info("usage store answers again: journal replayed")
                self._recovery = None  # no await since the journal was seen empty
                return


def _resolve(entries: Sequence[Entry], error: BaseException | None = None) -> None:
    for _, done in entries:
        if done is None or done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
