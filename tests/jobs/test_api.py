"""The jobs API refuses what could never run, in the OpenAI error envelope, and says which
kind of queue it has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.jobs.client import CHAT, JobsClient

TOO_LATE = (datetime.now(UTC) + timedelta(days=400)).isoformat()
CHAT_JOB = {"path": "chat/completions", "body": CHAT}


@pytest.mark.parametrize(
    ("payload", "reason", "param"),
    [
        ({"path": "models", "body": CHAT}, "unknown_path", "path"),
        ({"path": "chat/completions/../../admin", "body": CHAT}, "unknown_path", "path"),
        ({"path": 7, "body": CHAT}, "unknown_path", "path"),
        ({"body": CHAT}, "unknown_path", "path"),
        ({"path": "chat/completions"}, "bad_body", "body"),
        ({"path": "chat/completions", "body": "hi"}, "bad_body", "body"),
        ({"path": "chat/completions", "body": {"messages": []}}, "missing_model", "body"),
        (
            {"path": "chat/completions", "body": {**CHAT, "stream": True}},
            "stream_not_supported",
            "body",
        ),
        ({**CHAT_JOB, "priority": "urgent"}, "bad_priority", None),
        ({**CHAT_JOB, "priority": 1}, "bad_priority", None),
        ({**CHAT_JOB, "scheduled_for": "soon"}, "bad_scheduled_for", None),
        ({**CHAT_JOB, "scheduled_for": 1700000000}, "bad_scheduled_for", None),
        ({**CHAT_JOB, "scheduled_for": TOO_LATE}, "bad_scheduled_for", None),
        ({**CHAT_JOB, "user": ""}, "bad_user", "user"),
        ([{"path": "chat/completions", "body": CHAT}], "malformed_json", None),
    ],
)  # fmt: skip
async def test_a_job_that_could_never_run_is_refused_with_400(
    jobs: JobsClient, payload: Any, reason: str, param: str | None
) -> None:
    """Each refusal names its reason (and the field at fault), so the app can fix it."""
    status, body = await jobs.post(payload)
    assert status == 400, body
    error = body["error"]
    assert (error["code"], error["type"], error["reason"]) == (
        "INVALID_INPUT",
        "invalid_request_error",
        reason,
    )
    assert error["param"] == (param or error["param"])
    assert error["request_id"]
    assert (await jobs.counts())["ai-normal"]["waiting"] == 0


async def test_a_body_that_is_not_json_is_refused_with_400(jobs: JobsClient) -> None:
    async with jobs.http.post(jobs.url("/sidecar/jobs"), data=b"{not json") as response:
        body = await response.json()
    assert response.status == 400
    assert body["error"]["reason"] == "malformed_json"


@pytest.mark.parametrize(
    "job_id", ["ai-normal:jdoesnotexist", "ai-normal:17", "elsewhere:1", "garbage"]
)
async def test_an_unknown_job_is_404_in_the_envelope(jobs: JobsClient, job_id: str) -> None:
    status, body = await jobs.get(job_id)
    assert status == 404
    assert (body["error"]["code"], body["error"]["reason"]) == ("INVALID_INPUT", "unknown_job")


async def test_an_accepted_job_says_where_to_find_it(jobs: JobsClient) -> None:
    """202 with the id, and a Location that GET answers."""
    async with jobs.http.post(
        jobs.url("/sidecar/jobs"), json={"path": "embeddings", "body": {"model": "m", "input": "x"}}
    ) as response:
        accepted = await response.json()
        location = response.headers["Location"]
    assert response.status == 202
    assert location == f"/sidecar/jobs/{accepted['id']}"
    async with jobs.http.get(jobs.url(location)) as found:
        assert (await found.json())["id"] == accepted["id"]


async def test_job_ids_cannot_be_guessed(jobs: JobsClient) -> None:
    """The jobs API needs no admin token, so an id must not lead to another's job."""
    payload = {"path": "chat/completions", "body": CHAT}
    first, second = [await jobs.submit(payload) for _ in range(2)]
    assert first.split(":")[0] == second.split(":")[0] == "ai-normal"
    assert len(first.split(":")[1]) >= 32
    assert first != second


async def test_readiness_says_whether_jobs_are_durable(
    job_backend: dict[str, Any], jobs: JobsClient
) -> None:
    """In process, /readyz says jobs are lost on restart; with Redis, that they are durable."""
    async with jobs.http.get(jobs.url("/readyz")) as response:
        queues = (await response.json())["services"]["queues"]
    assert queues["status"] == "healthy"
    if "redis_url" in job_backend:
        assert (queues["backend"], "durable" in queues["message"]) == ("redis", True)
    else:
        assert (queues["backend"], "not durable" in queues["message"]) == ("in-process", True)


async def test_an_unreachable_redis_makes_the_jobs_api_503_not_hang(
    make_sidecar: Any, upstream: Any, http: aiohttp.ClientSession
) -> None:
    """Submitting and counting answer 503 (retryable) when Redis is away; /readyz says so."""
    server = await make_sidecar(
        str(upstream.make_url("/v1")),
        redis_url="redis://127.0.0.1:1/0",
        jobs={"workers": False},
    )
    jobs = JobsClient(http, server)
    status, body = await jobs.post({"path": "chat/completions", "body": CHAT})
    assert status == 503, body
    assert (body["error"]["reason"], body["error"]["retry"]) == ("queue_unavailable", True)
    async with http.get(jobs.url("/readyz")) as response:
        assert (await response.json())["services"]["queues"]["status"] == "unhealthy"


async def test_readiness_shows_each_queues_backlog(jobs: JobsClient) -> None:
    """/readyz's queues entry counts the jobs waiting per queue, delayed ones included: two
    batch jobs scheduled an hour ahead are a backlog of 2 on ai-batch and 0 elsewhere."""
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for _ in range(2):
        await jobs.submit({**CHAT_JOB, "priority": "batch", "scheduled_for": later})
    async with jobs.http.get(jobs.url("/readyz")) as response:
        queues = (await response.json())["services"]["queues"]
    assert queues["backlog"] == {"ai-high-priority": 0, "ai-normal": 0, "ai-batch": 2}
