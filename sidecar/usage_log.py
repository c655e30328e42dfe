"""The durable usage log: a billed call's record is on disk before its reply's last bytes leave.

::

    submit() ──▶ write-ahead segment: one write(2) of a JSON line, in the caller ── durable
                   │ against kill -9 from here (the kernel has it); the reply goes on at once
                   ▼
                 queue ── one writer task takes everything queued (≤ max_batch) as soon as the
                   │      previous commit ended: group commit, no timer
                   ▼
                 store.write(batch) ── one transaction ──▶ committed: the segment that held
                   │                                       the batch is emptied once every
                   │ the store is down, or slower          record in it is committed
                   ▼ than commit_timeout_s
                 journal: JSON lines, fdatasync'd per batch ──▶ durable too; later batches go
                   ▲                                            here as well
                   └── replayed into the store when it answers again (every retry_s), and
                       at start(); then truncated. Replays are idempotent: ``record_id``.

Why a write-ahead segment rather than waiting for the commit: a reply that waits for its batch's
commit pays the commit's latency and a task switch or two (about half a millisecond here under
load); a ``write(2)`` costs a few microseconds and survives a crash of this process just as well.
Like the SQLite store (``synchronous=NORMAL``), it does not survive an OS crash or power loss
of the last moments: records are ``fdatasync``'d only once they reach the journal. There are
two segments per journal slot: new records go to the active one; the writer switches to the
other (once it is empty) before each batch, so a segment empties as soon as its records are
committed, however busy the log. If the segment cannot be written (a full disk), the caller
waits for the commit instead, as it would without one.

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

# A record, the future of a caller waiting for it to be durable (None: nobody waits, it was
# written ahead), and its write-ahead segment (None: not written ahead).
Entry = tuple[UsageRecord, asyncio.Future[None] | None, int | None]


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
    """A record as one JSON line (orjson writes the dataclass and its time in ISO 8601)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson refuses lone surrogates; json escapes them
        data: dict[str, Any] = {name: getattr(record, name) for name in _FIELDS}
        data["time"] = record.time.isoformat()
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
        held: list[Path] = []  # slots this process holds: their write-ahead segments are ours
        for slot in [base, *slots]:
            fd = _lock(slot)
            if fd is None:
                continue
            held.append(slot)
            if journal is None:
                journal = cls(slot, fd)
                continue
            try:  # an orphan: adopt its records, then remove it
                journal.adopt(os.pread(fd, os.fstat(fd).st_size, 0))
                os.unlink(slot)
            finally:
                os.close(fd)
        number = len(slots) + 1
        while journal is None:
            slot = base.with_name(f"{base.name}.{number}")
            if not slot.exists() and (fd := _lock(slot)) is not None:
                journal = cls(slot, fd)
                held.append(slot)
            number += 1
        for slot in held:  # records written ahead by a process that crashed
            for segment in WriteAhead.paths_for(slot):
                with contextlib.suppress(FileNotFoundError):
                    journal.adopt(segment.read_bytes())
                    segment.unlink()
        _sync_directory(base.parent)
        return journal

    def adopt(self, data: bytes) -> None:
        """Append another file's lines (a torn last line is kept apart from the next ones)."""
        if data:
            self._write(data if data.endswith(b"\n") else data + b"\n")

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


class WriteAhead:
    """The two write-ahead segments of a journal slot (see the module docstring).

    ``pending`` counts, per segment, the records written to it that are not yet committed or
    journaled; a segment is emptied when its count drops to 0 and it is not the active one.
    """

    def __init__(self, slot: Path) -> None:
        self.paths = self.paths_for(slot)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        self._fds = [os.open(path, flags, 0o600) for path in self.paths]
        self.active = 0
        self.pending = [0, 0]

    @staticmethod
    def paths_for(slot: Path) -> tuple[Path, Path]:
        return slot.with_name(f".{slot.name}.ahead0"), slot.with_name(f".{slot.name}.ahead1")

    def write(self, line: bytes) -> int | None:
        """Append ``line`` to the active segment; its index, or None if it could not be."""
        fd = self._fds[self.active]
        try:
            written = os.write(fd, line)
            if written != len(line):  # a short write (a full disk): no half line left behind
                os.ftruncate(fd, os.fstat(fd).st_size - written)
                return None
        except OSError:
            return None
        self.pending[self.active] += 1
        return self.active

    def rotate(self) -> None:
        """New records go to the other segment from now on, if it is empty."""
        other = self.active ^ 1
        if self.pending[other] == 0:
            left, self.active = self.active, other
            if self.pending[left] == 0:
                self._empty(left)

    def done(self, segment: int) -> None:
        """One record of ``segment`` is committed or journaled."""
        self.pending[segment] -= 1
        if self.pending[segment] == 0 and segment != self.active:
            self._empty(segment)

    def _empty(self, segment: int) -> None:
        with contextlib.suppress(OSError):  # left as it is, it is replayed at the next start
            os.ftruncate(self._fds[segment], 0)

    def close(self) -> None:
        """Close the segments; remove them when every record in them is durable elsewhere."""
        for fd in self._fds:
            os.close(fd)
        if not any(self.pending):
            for path in self.paths:
                with contextlib.suppress(OSError):
                    path.unlink()


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

    ``submit()`` hands a record over without waiting and says whether the caller must wait for
    it to be durable; ``record()`` returns once it is (written ahead, committed, or journaled:
    each survives ``kill -9``). ``flush()`` waits until everything handed over is in the store
    or the journal (for readers of the store: the usage report, tests). ``write_ahead=False``
    makes every record wait for its commit.
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
        write_ahead: bool = True,
    ) -> None:
        self.store = store
        self.journal_path = Path(journal_path)
        self.write_ahead = write_ahead
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
        self._ahead: WriteAhead | None = None
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
        if self._journal is not None and self.write_ahead:
            try:
                self._ahead = WriteAhead(self._journal.path)
            except OSError as exc:  # records wait for their commit instead
                log.error("usage write-ahead by %s cannot be opened: %s", self.journal_path, exc)
        if self.spilled:
            self._replayed.clear()
            if not await self.replay():
                self._recover_later()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def record(self, record: UsageRecord) -> None:
        """Hand ``record`` over and return once it is durable (written ahead, committed, or
        journaled).

        Raises :class:`UsageNotDurable` when neither the store nor the journal could take a
        record that was not written ahead (it stays queued). Cancelling the wait does not
        withdraw a record handed over.
        """
        done = self.submit(record)
        if done is not None:
            await done

    def submit(self, record: UsageRecord) -> asyncio.Future[None] | None:
        """Hand ``record`` over; never waits, never drops.

        None when the record is durable already (written ahead). Otherwise a future that
        completes once it is committed or journaled: when it could not be written ahead, and
        when ``max_queued`` records are waiting for the store (the caller's wait is then the
        back-pressure that keeps the queue bounded by the callers in flight).
        """
        if self._stopped():
            raise RuntimeError("the usage log is not running")
        segment = None if self._ahead is None else self._ahead.write(encode(record))
        done: asyncio.Future[None] | None = None
        if segment is None or self.depth >= self.max_queued:
            done = asyncio.get_running_loop().create_future()
        self._queue.append((record, done, segment))
        self._idle.clear()
        self._wake.set()
        return done

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Until every record handed over so far is committed or journaled (True), or for at
        most ``timeout_s`` (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

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
                await self._spill([record for record, _, _ in left])
                self._durable(left)
            except OSError as exc:
                written_ahead = sum(segment is not None for _, _, segment in left)
                log.error(
                    "usage log closed with %d records neither committed nor journaled (%s; %d "
                    "of them are in its write-ahead segments, replayed at the next start): %s",
                    len(left), exc, written_ahead,
                    [encode(record).decode() for record, _, _ in left],
                )  # fmt: skip
                _resolve(left, UsageNotDurable(str(exc)))
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # --- the writer -----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._ahead is not None:
                self._ahead.rotate()  # what is queued now is in the segment being left
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
        records = [record for record, _, _ in batch]
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
            self._queue.extendleft((record, None, seg) for record, _, seg in reversed(batch))
            await self._sleep(self.retry_s)
            return
        self._durable(batch)

    def _durable(self, entries: Sequence[Entry]) -> None:
        """``entries`` are committed or journaled: their waiters resume, their segments may
        empty."""
        _resolve(entries)
        if self._ahead is not None:
            for _, _, segment in entries:
                if segment is not None:
                    self._ahead.done(segment)

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
    for _, done, _ in entries:
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
