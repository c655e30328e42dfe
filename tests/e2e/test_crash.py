"""kill -9 in the middle of the load loses no usage record whose ``record()`` had returned: the
next start stores what the killed process had written ahead and not committed yet, into SQLite
or PostgreSQL, and what its journal held while the database was down."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from sidecar.backends.setup import open_usage_store
from sidecar.usage_log import UsageLog
from tests.test_usage_log import stored_ids, unreachable_url

ROOT = Path(__file__).resolve().parents[2]
CONFIRMED = 1000  # confirmations read before the kill; the writer is mid-load by then


async def confirmed_then_killed(database_url: str, journal: Path, errors: Path) -> set[str]:
    """Run tests/crash_writer.py with 64 concurrent recorders, SIGKILL it once CONFIRMED ids
    were printed; every id it confirmed (read to the end of its stdout)."""
    with errors.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.crash_writer", database_url, str(journal), "64",
            "1000000", stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT,
        )  # fmt: skip
    assert child.stdout is not None
    seen = 0
    output = b""
    try:
        async with asyncio.timeout(40):
            while seen < CONFIRMED:
                line = await child.stdout.readline()
                assert line.endswith(b"\n"), "the writer stopped; its stderr is in " + str(errors)
                output += line
                seen += 1
            child.send_signal(signal.SIGKILL)
            output += await child.stdout.read()  # confirmed before the kill, not yet read
            await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == -signal.SIGKILL
    complete = output[: output.rfind(b"\n") + 1]  # a line cut by the kill was not confirmed
    return {line.decode() for line in complete.splitlines()}


async def test_kill_9_loses_no_committed_record(database_url: str, tmp_path: Path) -> None:
    """Every record_id the writer printed (its record() had returned) is in the database after
    the process was SIGKILLed mid-load and a new log started on the same files, once."""
    confirmed = await confirmed_then_killed(
        database_url, tmp_path / "usage.pending.jsonl", tmp_path / "stderr.txt"
    )
    assert len(confirmed) >= CONFIRMED
    await restart(database_url, tmp_path / "usage.pending.jsonl")
    stored = await stored_ids(database_url)
    assert confirmed - set(stored) == set()  # records lost: 0
    assert len(stored) == len(set(stored))


async def restart(database_url: str, journal: Path) -> UsageLog:
    """A new log on the same database and journal: it stores what the killed one left (its
    write-ahead segments and journal), then stops."""
    store = await open_usage_store(database_url)
    log = UsageLog(store, journal)
    try:
        await log.start()
    finally:
        await log.close()
        await store.close()
    assert list(journal.parent.glob(f"*{journal.name}*")) == []
    return log


async def test_kill_9_while_the_database_is_down_loses_nothing_from_the_journal(
    database_url: str, tmp_path: Path
) -> None:
    """With the database unreachable, confirmed records are in the journal; SIGKILL the writer,
    and the next UsageLog.start() on a reachable database stores every one of them."""
    journal = tmp_path / "usage.pending.jsonl"
    down = unreachable_url(database_url, tmp_path)
    confirmed = await confirmed_then_killed(down, journal, tmp_path / "stderr.txt")
    assert len(confirmed) >= CONFIRMED

    log = await restart(database_url, journal)
    assert log.replayed >= len(confirmed)
    stored = await stored_ids(database_url)
    assert confirmed - set(stored) == set()  # records lost: 0
    assert len(stored) == len(set(stored))
