"""Jobs run through the request pipeline: results, delays, retries, unrecoverable errors,
rate limits and counts, with the queues in process and in Redis (BullMQ)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from sidecar.server import RUNTIME
from sidecar.simulator import Simulator
from tests.helpers import PROVIDER_KEY
from tests.jobs.client import CHAT, JobsClient
from tests.jobs.conftest import JobSidecar


def chat_calls(sim: Simulator) -> list[float]:
    """Arrival times of the chat requests the upstream saw."""
    return [seen.t for seen in sim.seen if seen.path == "/v1/chat/completions"]


async def test_a_job_runs_through_the_pipeline_and_keeps_the_upstream_answer(
    jobs: JobsClient, sim: Simulator
) -> None:
    """The job's result is the upstream's JSON answer; the call went out like a live one."""
    status, accepted = await jobs.post({"path": "chat/completions", "body": CHAT})
    assert (status, accepted["status"]) == (202, "waiting")
    assert accepted["id"].startswith("ai-normal:")

    job = await jobs.wait(accepted["id"])

    assert job["status"] == "completed", job
    assert job["attempts"] == 1
    assert job["result"]["object"] == "chat.completion"
    assert job["result"]["choices"][0]["message"]["content"]
    [call] = [seen for seen in sim.seen if seen.path == "/v1/chat/completions"]
    assert call.body is not None
    assert call.body["model"] == CHAT["model"]
    assert call.headers["authorization"] == f"Bearer {PROVIDER_KEY}"


async def test_a_job_is_billed_to_its_user(jobs: JobsClient) -> None:
    """The job's ``user`` is the request's user: its usage lands on that user's report."""
    job_id = await jobs.submit({"path": "/v1/chat/completions", "body": CHAT, "user": "job-user"})
    assert (await jobs.wait(job_id))["status"] == "completed"

    url = jobs.url("/sidecar/usage?user=job-user&period=day")
    async with jobs.http.get(url) as response:
        report = await response.json()
    assert [row["requests"] for row in report["by_model"]] == [1], report


async def test_the_submitters_user_header_names_the_user_when_the_job_does_not(
    jobs: JobsClient,
) -> None:
    job_id = await jobs.submit(
        {"path": "chat/completions", "body": CHAT}, headers={"X-Sidecar-User": "header-user"}
    )
    assert (await jobs.wait(job_id))["status"] == "completed"
    url = jobs.url("/sidecar/usage?user=header-user&period=day")
    async with jobs.http.get(url) as response:
        report = await response.json()
    assert [row["requests"] for row in report["by_model"]] == [1], report


async def test_a_scheduled_job_waits_until_its_time(jobs: JobsClient, sim: Simulator) -> None:
    """``scheduled_for`` delays the job: it is counted delayed, and runs no earlier."""
    submitted = time.monotonic()
    when = datetime.now(UTC) + timedelta(seconds=1)
    status, accepted = await jobs.post(
        {"path": "chat/completions", "body": CHAT, "scheduled_for": when.isoformat()}
    )
    assert (status, accepted["status"]) == (202, "delayed")
    assert (await jobs.get(accepted["id"]))[1]["status"] == "delayed"
    assert (await jobs.counts())["ai-normal"]["delayed"] == 1

    job = await jobs.wait(accepted["id"])

    assert job["status"] == "completed"
    [started] = chat_calls(sim)
    assert started - submitted >= 0.9


async def test_a_time_already_past_runs_at_once(jobs: JobsClient) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    status, accepted = await jobs.post(
        {"path": "chat/completions", "body": CHAT, "scheduled_for": past}
    )
    assert (status, accepted["status"]) == (202, "waiting")
    assert (await jobs.wait(accepted["id"]))["status"] == "completed"


async def test_retryable_failures_are_retried_after_exponential_backoff(
    job_sidecar: JobSidecar, http: aiohttp.ClientSession, sim: Simulator
) -> None:
    """High priority: 3 attempts; the waits before the 2nd and 3rd are backoff_ms and 2x."""
    jobs = JobsClient(http, await job_sidecar(jobs={"queues": {"high": {"backoff_ms": 200}}}))
    sim.script("gpt-4o-mini", [503, 503])

    job = await jobs.wait(
        await jobs.submit({"path": "chat/completions", "body": CHAT, "priority": "high"})
    )

    assert (job["status"], job["attempts"]) == ("completed", 3), job
    first, second, third = chat_calls(sim)
    assert second - first >= 0.2
    assert third - second >= 0.4


async def test_a_job_out_of_attempts_fails_with_its_last_error(
    jobs: JobsClient, sim: Simulator
) -> None:
    """Normal priority: 2 attempts, then failed with the error's code; failed jobs are kept."""
    sim.script("gpt-4o-mini", [503, 503, 503])

    job = await jobs.wait(await jobs.submit({"path": "chat/completions", "body": CHAT}))

    assert (job["status"], job["attempts"], job["max_attempts"]) == ("failed", 2, 2), job
    assert job["error"]["code"] == "MODEL_UNAVAILABLE"
    assert "result" not in job
    assert len(chat_calls(sim)) == 2
    counts = await jobs.counts()
    assert (counts["ai-normal"]["failed"], counts["ai-normal"]["completed"]) == (1, 0)


@pytest.mark.parametrize(
    ("outcome", "code"),
    [("context", "CONTEXT_LENGTH"), ("quota", "QUOTA_EXCEEDED"), (400, "INVALID_INPUT")],
)
async def test_an_error_no_retry_can_fix_fails_the_job_at_once(
    jobs: JobsClient, sim: Simulator, outcome: str | int, code: str
) -> None:
    """A high-priority job has 3 attempts, but one that no retry can fix fails on the first."""
    sim.script("gpt-4o-mini", [outcome, outcome, outcome])

    job = await jobs.wait(
        await jobs.submit({"path": "chat/completions", "body": CHAT, "priority": "high"})
    )

    assert (job["status"], job["attempts"], job["max_attempts"]) == ("failed", 1, 3), job
    assert job["error"]["code"] == code
    assert len(chat_calls(sim)) == 1


async def test_the_sidecars_own_rate_limit_defers_a_job_without_using_an_attempt(
    job_sidecar: JobSidecar, http: aiohttp.ClientSession, sim: Simulator
) -> None:
    """Batch jobs have one attempt; a job refused by the user's rate limit waits for room."""
    limited = {"chat": {"rate_limit": {"requests": 1, "per_s": 1}}}
    jobs = JobsClient(http, await job_sidecar(operations=limited))
    payload = {"path": "chat/completions", "body": CHAT, "priority": "batch", "user": "bursty"}

    first, second = [await jobs.submit(payload) for _ in range(2)]

    done = [await jobs.wait(first), await jobs.wait(second)]
    assert [(job["status"], job["attempts"]) for job in done] == [("completed", 1)] * 2, done
    calls = chat_calls(sim)
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.9  # the second waited for the window


async def test_an_open_circuit_defers_a_job_instead_of_spending_its_attempts(
    job_sidecar: JobSidecar, http: aiohttp.ClientSession, sim: Simulator
) -> None:
    """Normal priority: 2 attempts. The first fails and opens the circuit for 0.5 s; the second
    finds it open (no upstream call) and waits for it instead of failing the job."""
    breaker = {"consecutive_failures": 1, "open_s": 0.5}
    jobs = JobsClient(http, await job_sidecar(resilience={"breaker": breaker}))
    sim.script("gpt-4o-mini", [503])

    job = await jobs.wait(await jobs.submit({"path": "chat/completions", "body": CHAT}))

    assert (job["status"], job["attempts"]) == ("completed", 2), job
    first, second = chat_calls(sim)
    assert second - first >= 0.45  # the circuit's open period, not the 50 ms backoff


async def test_queues_count_jobs_per_state_and_need_the_admin_token(
    job_sidecar: JobSidecar, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With workers off, submitted jobs wait (or are delayed) in their priority's queue."""
    monkeypatch.setenv("SIDECAR_ADMIN_TOKEN", "admin-secret")
    jobs = JobsClient(http, await job_sidecar(jobs={"workers": False}))
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for priority in ("high", "normal", "batch", "batch"):
        await jobs.submit({"path": "chat/completions", "body": CHAT, "priority": priority})
    await jobs.submit({"path": "embeddings", "body": {"model": "m", "input": "x"}})
    await jobs.submit({"path": "chat/completions", "body": CHAT, "scheduled_for": later})

    async with http.get(jobs.url("/sidecar/queues")) as refused:
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "UNAUTHORIZED"
    counts = await jobs.counts({"Authorization": "Bearer admin-secret"})

    assert counts == {
        "ai-high-priority": {"waiting": 1, "active": 0, "completed": 0, "failed": 0, "delayed": 0},
        "ai-normal": {"waiting": 2, "active": 0, "completed": 0, "failed": 0, "delayed": 1},
        "ai-batch": {"waiting": 2, "active": 0, "completed": 0, "failed": 0, "delayed": 0},
    }


async def test_a_streaming_job_from_another_producer_fails_without_retries(
    jobs: JobsClient, sim: Simulator
) -> None:
    """A job added straight to the queue (as a Node app would) is checked when it runs."""
    queue = jobs.server.app[RUNTIME].backends.jobs
    job_id = await queue.add(
        "ai-high-priority",
        "chat/completions",
        {"path": "chat/completions", "body": {**CHAT, "stream": True}},
        attempts=3,
    )

    job = await jobs.wait(job_id)

    assert (job["status"], job["attempts"]) == ("failed", 1), job
    assert job["error"]["code"] == "INVALID_INPUT"
    assert "stream" in job["error"]["message"]
    assert chat_calls(sim) == []


async def test_a_jobs_priority_chooses_its_queue(jobs: JobsClient, sim: Simulator) -> None:
    """batch -> ai-batch; the job shows both."""
    job_id = await jobs.submit({"path": "chat/completions", "body": CHAT, "priority": "batch"})
    job = await jobs.wait(job_id)
    assert (job["status"], job["priority"], job["queue"]) == ("completed", "batch", "ai-batch")
