"""`llm-sidecar worker` as a real process: a job it was running when killed with SIGKILL is
run again by the next worker (BullMQ's stalled-job check), and SIGTERM lets the running job
finish before the process exits."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer

from sidecar.simulator import Simulator
from tests.helpers import MakeSidecar
from tests.jobs.client import CHAT, JobsClient, merged
from tests.jobs.conftest import JOB_TEST_SETTINGS, redis_jobs

# Quick recovery for the test: a dead worker's lock expires after 1 s and live workers look
# for such jobs every 0.3 s (production: 30 s each).
RECOVERY = {"jobs": {"lock_ms": 1000, "stalled_interval_ms": 300, "drain_s": 10}}

Process = asyncio.subprocess.Process


@pytest.fixture
def worker_settings(key_prefix: str, upstream: TestServer, tmp_path: Path) -> dict[str, Any]:
    upstream_url = str(upstream.make_url("/v1"))
    return merged(
        JOB_TEST_SETTINGS,
        redis_jobs(key_prefix),
        RECOVERY,
        {
            "providers": {"sim": {"base_url": upstream_url, "api_key_env": None}},
            "database_url": f"sqlite:///{tmp_path}/usage.db",
        },
    )


@pytest.fixture
async def api(
    worker_settings: dict[str, Any], make_sidecar: MakeSidecar, upstream: TestServer
) -> AsyncIterator[JobsClient]:
    """The jobs API of a sidecar that runs no worker itself (jobs.workers: false)."""
    settings = merged(worker_settings, {"jobs": {"workers": False}})
    settings.pop("providers")
    server = await make_sidecar(str(upstream.make_url("/v1")), **settings)
    async with aiohttp.ClientSession() as http:
        yield JobsClient(http, server)


@pytest.fixture
async def workers(
    worker_settings: dict[str, Any], tmp_path: Path
) -> AsyncIterator[Callable[[], Any]]:
    """Start `llm-sidecar worker` processes on the test's config; all are killed afterwards."""
    config = tmp_path / "worker.yaml"
    config.write_text(yaml.safe_dump(worker_settings))
    started: list[Process] = []

    async def start() -> Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", "worker", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def chat_calls(sim: Simulator) -> int:
    return sum(1 for seen in sim.seen if seen.path == "/v1/chat/completions")


async def test_a_job_running_when_its_worker_is_killed_is_run_again(
    api: JobsClient, workers: Callable[[], Any], sim: Simulator
) -> None:
    """kill -9 mid-job: the job stays active under a lock nobody renews; the next worker finds
    it stalled, puts it back, and runs it to completion."""
    sim.config.latency_ms, sim.config.latency_sigma = 60_000, 0.0  # the first call hangs
    job_id = await api.submit({"path": "chat/completions", "body": CHAT, "priority": "high"})
    first = await workers()
    await until(lambda: sim.active == 1, 30, "the worker to call the upstream")
    assert (await api.get(job_id))[1]["status"] == "active"

    first.send_signal(signal.SIGKILL)
    await first.wait()
    sim.config.latency_ms = 0.0  # the next call answers at once
    await workers()
    job = await api.wait(job_id, timeout_s=30)

    assert job["status"] == "completed", job
    assert job["result"]["object"] == "chat.completion"
    assert job["attempts"] == 1  # a stalled job is recovered, not counted as a failed attempt
    assert chat_calls(sim) == 2


async def test_sigterm_lets_the_running_job_finish_then_exits_cleanly(
    api: JobsClient, workers: Callable[[], Any], sim: Simulator
) -> None:
    """A graceful stop: no job is lost or left active, and the process exits 0."""
    sim.config.latency_ms, sim.config.latency_sigma = 1500, 0.0
    job_id = await api.submit({"path": "chat/completions", "body": CHAT})
    process = await workers()
    await until(lambda: sim.active == 1, 30, "the worker to call the upstream")

    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 0, stderr.decode()
    assert b"llm-sidecar worker: stopped" in stderr
    job = (await api.get(job_id))[1]
    assert (job["status"], job["attempts"]) == ("completed", 1), job
    assert chat_calls(sim) == 1


async def test_the_worker_command_needs_redis(tmp_path: Path) -> None:
    """Without Redis there is no queue for a separate process to share: exit 2, say why."""
    config = tmp_path / "no-redis.yaml"
    config.write_text(yaml.safe_dump({"providers": {"sim": {"api_key_env": None}}}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "worker", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"redis_url" in stderr
