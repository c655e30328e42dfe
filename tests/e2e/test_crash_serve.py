"""kill -9 under load loses no usage record of an answer a client received.

A real ``llm-sidecar serve`` process answers concurrent requests; once 200 answers have arrived
it is killed with SIGKILL mid-load, then started again on the same configuration (it stores what
the killed process had written ahead) and stopped. Every request id the clients saw answered
must then be in the SQLite database, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import aiohttp
import yaml
from aiohttp.test_utils import TestServer

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def recorded_ids(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return [row[0] for row in db.execute("SELECT request_id FROM usage_records")]


async def test_no_record_of_a_received_answer_is_lost_to_kill_9(
    upstream: TestServer, tmp_path: Path
) -> None:
    database = tmp_path / "usage.db"
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "sim": {"base_url": str(upstream.make_url("/v1")), "api_key_env": None}
                },
                "database_url": f"sqlite:///{database}",
                "operations": {"chat": {"rate_limit": None}},
            }
        )
    )
    port = free_port()
    process = await serve(config, port)
    base = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    enough = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as http:
            await until_live(http, base)

            async def client(worker: int) -> None:
                for n in range(100):
                    request_id = f"crash-{worker}-{n}"
                    headers = {"X-Request-Id": request_id}
                    try:
                        async with http.post(
                            f"{base}/v1/chat/completions", json=BODY, headers=headers
                        ) as resp:
                            await resp.read()
                            if resp.status != 200:
                                continue
                    except (aiohttp.ClientError, OSError):
                        return  # the sidecar is gone
                    answered.append(request_id)
                    if len(answered) >= 200:
                        enough.set()

            workers = [asyncio.ensure_future(client(w)) for w in range(32)]
            await asyncio.wait_for(enough.wait(), 60)
            process.send_signal(signal.SIGKILL)  # mid-load: other requests are in flight
            await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 30)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert len(answered) >= 200

    restarted = await serve(config, port)
    try:
        async with aiohttp.ClientSession() as http:
            await until_live(http, base)
    finally:
        restarted.send_signal(signal.SIGTERM)
        await asyncio.wait_for(restarted.wait(), 30)
    assert restarted.returncode == 0  # SIGTERM is a graceful stop (drain, commit), not a kill
    recorded = await asyncio.to_thread(recorded_ids, database)
    assert set(answered) - set(recorded) == set()  # records lost: 0
    assert len(recorded) == len(set(recorded))  # and none stored twice


async def serve(config: Path, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve", "--config", str(config), "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def until_live(http: aiohttp.ClientSession, base: str) -> None:
    for _ in range(200):  # until it listens (bounded: 10 s)
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError("the sidecar did not start listening")
