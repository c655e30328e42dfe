"""The process tests/e2e/test_crash.py kills: many tasks record usage at once, and each prints
a record's id on stdout only after ``record()`` returned for it, the moment a client would get
its reply. Usage: ``python -m tests.crash_writer DATABASE_URL JOURNAL WORKERS LIMIT``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from datetime import UTC, datetime

from sidecar.backends import UsageRecord
from sidecar.backends.usage import PostgresUsage, SqliteUsage
from sidecar.usage_log import UsageLog


def usage_record(
    user: str = "crash", *, input_tokens: int = 0, output_tokens: int = 0
) -> UsageRecord:
    return UsageRecord(
        time=datetime.now(UTC),
        request_id="req-crash",
        user=user,
        operation="chat",
        model_requested="gpt-4o-mini",
        model_served="gpt-4o-mini",
        provider="openai",
        cost_micros=150,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


async def main(database_url: str, journal: str, workers: int, limit: int) -> None:
    store: SqliteUsage | PostgresUsage
    if database_url.startswith("postgresql://"):
        store = PostgresUsage(database_url)
    else:
        store = SqliteUsage(database_url)
    await store.open()  # an unreachable database is logged, and records go to the journal
    log = UsageLog(store, journal)
    await log.start()
    numbers = itertools.count()

    async def work() -> None:
        while next(numbers) < limit:
            record = usage_record(input_tokens=10, output_tokens=5)
            await log.record(record)
            sys.stdout.write(record.record_id + "\n")
            sys.stdout.flush()
            await asyncio.sleep(0)  # as a server's loop: other work, the writer's commits

    await asyncio.gather(*(work() for _ in range(workers)))
    await log.close()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
