"""Node BullMQ and the sidecar share the queues: a job a Node app enqueues with npm `bullmq`
is run by the sidecar's workers, and the Node app reads its result back (and the reverse).

Runs the machine's ``node`` on the scripts beside this file, with the packages pinned in
package.json (``scripts/test`` runs ``npm ci`` here). Skipped only when node or that install
is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sidecar.simulator import Simulator
from tests.helpers import REDIS_URL, MakeSidecar
from tests.jobs.client import CHAT, JobsClient, merged
from tests.jobs.conftest import JOB_TEST_SETTINGS, redis_jobs

HERE = Path(__file__).parent
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (HERE / "node_modules" / "bullmq").is_dir(),
        reason="npm packages missing: run `npm ci` in tests/interop (scripts/test does)",
    ),
]


async def node(script: str, *args: str, prefix: str) -> str:
    """Run a script of this folder with node; its stdout (it must succeed)."""
    assert NODE is not None
    env = {**os.environ, "REDIS_URL": REDIS_URL, "BULLMQ_PREFIX": prefix}
    process = await asyncio.create_subprocess_exec(
        NODE, str(HERE / script), *args, cwd=HERE, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().strip()


@pytest.fixture
def prefix(key_prefix: str) -> str:
    return key_prefix.rstrip(":")


@pytest.fixture
async def jobs(
    key_prefix: str, upstream: TestServer, make_sidecar: MakeSidecar
) -> AsyncIterator[JobsClient]:
    """A sidecar whose workers run the queues under this test's prefix."""
    settings = merged(JOB_TEST_SETTINGS, redis_jobs(key_prefix))
    server = await make_sidecar(str(upstream.make_url("/v1")), **settings)
    async with aiohttp.ClientSession() as http:
        yield JobsClient(http, server)


async def node_result(queue: str, job_id: str, prefix: str) -> dict[str, Any]:
    seen: dict[str, Any] = json.loads(
        await node("result.mjs", queue, job_id, "30000", prefix=prefix)
    )
    return seen


async def test_a_job_enqueued_by_node_is_run_by_the_sidecar_and_read_back_in_node(
    jobs: JobsClient, prefix: str, sim: Simulator
) -> None:
    data = {"path": "chat/completions", "body": CHAT, "user": "node-app"}
    node_id = await node(
        "enqueue.mjs", "ai-normal", json.dumps(data), '{"attempts": 2}', prefix=prefix
    )

    seen = await node_result("ai-normal", node_id, prefix)

    assert (seen["state"], seen["attemptsMade"], seen["failedReason"]) == ("completed", 1, None)
    assert seen["returnvalue"]["object"] == "chat.completion"
    # The sidecar shows the same job, under the id that names its queue.
    status, job = await jobs.get(f"ai-normal:{node_id}")
    assert status == 200
    assert job["result"] == seen["returnvalue"]
    [call] = [s for s in sim.seen if s.path == "/v1/chat/completions"]
    assert call.body is not None
    assert call.body["messages"] == CHAT["messages"]


async def test_a_job_submitted_to_the_sidecar_is_readable_from_node(
    jobs: JobsClient, prefix: str
) -> None:
    job_id = await jobs.submit({"path": "embeddings", "body": {"model": "m", "input": "hello"}})
    queue, _, node_id = job_id.partition(":")

    seen = await node_result(queue, node_id, prefix)

    assert seen["state"] == "completed"
    assert seen["returnvalue"]["object"] == "list"
    assert seen["returnvalue"] == (await jobs.wait(job_id))["result"]


async def test_node_sees_a_job_that_cannot_succeed_fail_with_the_sidecars_error_code(
    jobs: JobsClient, prefix: str, sim: Simulator
) -> None:
    """3 attempts asked for by Node, but a context overflow fails on the first."""
    sim.script("gpt-4o-mini", ["context"])
    data = {"path": "chat/completions", "body": CHAT}
    options = {"attempts": 3, "backoff": {"type": "exponential", "delay": 50}}
    node_id = await node(
        "enqueue.mjs", "ai-high-priority", json.dumps(data), json.dumps(options), prefix=prefix
    )

    seen = await node_result("ai-high-priority", node_id, prefix)

    assert (seen["state"], seen["attemptsMade"]) == ("failed", 1), seen
    assert seen["failedReason"].startswith("CONTEXT_LENGTH: ")
