"""Async jobs: a model request run later, through the same pipeline as a live one.

::

    POST /sidecar/jobs {path, body, priority, scheduled_for?, user?}   (JobService.submit)
        │  checked now: a bad request is a 400, never a job that can only fail
        ▼
    ai-high-priority │ ai-normal │ ai-batch      BullMQ queues in Redis (Node apps may add jobs
        │                                      too), or in process without Redis
        ▼  JobWorkers: per queue, jobs.queues.<priority>.concurrency at once
    JobRunner: the pipeline's handle → rate limits, budgets, cache, retries, telemetry
        ├─ 2xx            → completed; the result is the upstream's JSON answer
        ├─ own rate limit, open circuit, resting provider (no upstream call made)
        │                 → run again when the answer's retry_after_s says (no attempt counted)
        ├─ error no retry can fix (errors.KINDS: retry no — INVALID_INPUT, CONTEXT_LENGTH,
        │                   QUOTA_EXCEEDED, ...) → failed now, remaining attempts unused
        └─ other errors   → retried after backoff_ms, 2x, 4x, ... until attempts run out

Job data, as a Node BullMQ producer would write it::

    {"path": "chat/completions", "body": {"model": "gpt-4o-mini", "messages": [...]},
     "user": "alice"}                       # user optional: else the body's user, else anonymous

Streaming is refused (at ``POST``, or as a failed job for one added by another producer): a
job's result is one JSON document. ``GET /sidecar/jobs/{id}`` shows a job; its error reads
``{"code", "message"}`` (BullMQ's ``failedReason`` holds ``"CODE: message"``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.backends import (
    JOB_QUEUES,
    Consumer,
    JobDeferred,
    JobFailed,
    JobInfo,
    JobQueue,
    JobQueueUnavailable,
    JobState,
)
from sidecar.config import PRIORITIES, Priority, Settings
from sidecar.errors import KINDS, ErrorCode, SidecarError
from sidecar.exchange import Exchange
from sidecar.openai_api import MODEL_ENDPOINTS, operation_for_path
from sidecar.pipeline.base import Next
from sidecar.pipeline.body import BodyLimit

log = logging.getLogger(__name__)

QUEUES: Final[dict[Priority, str]] = JOB_QUEUES
PRIORITY_OF: Final[dict[str, Priority]] = {queue: p for p, queue in QUEUES.items()}
MAX_SCHEDULE_AHEAD: Final = timedelta(days=366)


# --- what a job is -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRequest:
    """The model request a job makes: checked when it is submitted and again when it runs
    (a job added by another producer was never submitted here)."""

    path: str  # below /v1: "chat/completions"
    body: dict[str, Any]
    user: str | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> JobRequest:
        path = data.get("path")
        normalised = _normalised_path(path) if isinstance(path, str) else None
        if normalised not in MODEL_ENDPOINTS:
            known = ", ".join(sorted(MODEL_ENDPOINTS))
            raise _invalid(
                f"'path' must name a model endpoint below /v1 ({known}); got {_shown(path)}.",
                "unknown_path",
                "path",
            )
        body = data.get("body")
        if not isinstance(body, dict):
            raise _invalid("'body' must be the request's JSON object.", "bad_body", "body")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid("'body.model' must be a non-empty string.", "missing_model", "body")
        if body.get("stream") is True:
            raise _invalid(
                "A job's result is one JSON document: send 'body.stream' false or leave it out.",
                "stream_not_supported",
                "body",
            )
        user = data.get("user")
        if user is not None and (not isinstance(user, str) or not user):
            raise _invalid("'user' must be a non-empty string when given.", "bad_user", "user")
        return cls(normalised, body, user)

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "body": self.body}
        if self.user is not None:
            data["user"] = self.user
        return data


def _normalised_path(path: str) -> str:
    """``/v1/chat/completions``, ``chat/completions`` and the like: the path below /v1."""
    return path.strip("/").removeprefix("v1/")


def _invalid(message: str, reason: str, param: str | None = None) -> SidecarError:
    return SidecarError(ErrorCode.INVALID_INPUT, message, reason=reason, param=param)


_JSON_TYPES: Final = {bool: "a boolean", int: "a number", float: "a number", list: "an array"}


def _shown(value: object) -> str:
    """A client's value fit to quote: a string (bounded), else its JSON type."""
    if isinstance(value, str):
        return repr(value[:100])
    if value is None:
        return "null (or nothing)"
    return _JSON_TYPES.get(type(value), "an object")


def parse_priority(value: object, default: Priority) -> Priority:
    if value is None:
        return default
    for priority in PRIORITIES:
        if value == priority:
            return priority
    raise _invalid(
        f"'priority' must be one of high, normal, batch; got {_shown(value)}.",
        "bad_priority",
        "priority",
    )


def delay_ms_until(value: object, now: datetime) -> int:
    """``scheduled_for`` (ISO 8601; without a zone it is UTC) as a delay from ``now``; a time
    already past runs at once."""
    if value is None:
        return 0
    when = None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            when = None
    if when is None:
        raise _invalid(
            f"'scheduled_for' must be an ISO 8601 time in UTC or with an offset, such as "
            f"{(now + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}; "
            f"got {_shown(value)}.",
            "bad_scheduled_for",
            "scheduled_for",
        )
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ahead = when - now
    if ahead > MAX_SCHEDULE_AHEAD:
        raise _invalid(
            f"'scheduled_for' may be at most {MAX_SCHEDULE_AHEAD.days} days ahead; got "
            f"{_shown(value)}.",
            "bad_scheduled_for",
            "scheduled_for",
        )
    return max(0, round(ahead.total_seconds() * 1000))


# --- the HTTP side -------------------------------------------------------------------------------


class JobService:
    """Submit jobs, show them, count them: what the ``/sidecar/jobs`` routes call."""

    def __init__(self, settings: Settings, queue: JobQueue) -> None:
        self.settings = settings
        self.queue = queue

    async def submit(self, payload: object, *, user: str | None = None) -> tuple[str, JobState]:
        """Enqueue ``{path, body, priority?, scheduled_for?, user?}``; the job's id and state.

        ``user`` (the submitter's ``X-Sidecar-User``) applies when the payload names none.
        """
        if not isinstance(payload, dict):
            raise _invalid(
                "POST /sidecar/jobs needs a JSON object {path, body, priority, scheduled_for?}.",
                "malformed_json",
            )
        request = JobRequest.parse(payload if user is None else {"user": user, **payload})
        operation = self.settings.operation(operation_for_path(request.path))
        priority = parse_priority(payload.get("priority"), operation.priority)
        delay_ms = delay_ms_until(payload.get("scheduled_for"), datetime.now(UTC))
        policy = self.settings.jobs.queues[priority]
        try:
            job_id = await self.queue.add(
                QUEUES[priority],
                request.path,
                request.data(),
                delay_ms=delay_ms,
                attempts=policy.attempts,
                backoff_ms=policy.backoff_ms,
            )
        except JobQueueUnavailable as exc:
            raise _unavailable(exc) from None
        return job_id, "delayed" if delay_ms else "waiting"

    async def status(self, job_id: str) -> dict[str, Any] | None:
        """``{id, status, attempts, result?, error?}`` (and its queue), or None if unknown."""
        queue, _, _ = job_id.rpartition(":")
        if queue not in PRIORITY_OF:
            return None
        try:
            job = await self.queue.get(job_id)
        except JobQueueUnavailable as exc:
            raise _unavailable(exc) from None
        if job is None:
            return None
        shown: dict[str, Any] = {
            "id": job.id,
            "status": job.state,
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "queue": job.queue,
            "priority": PRIORITY_OF[job.queue],
        }
        if job.state == "completed":
            shown["result"] = job.result
        if job.error is not None:
            shown["error"] = error_of(job.error)
        return shown

    async def counts(self) -> dict[str, dict[JobState, int]]:
        """Jobs per state of every queue, zeros included."""
        try:
            return await self.queue.counts(list(QUEUES.values()))
        except JobQueueUnavailable as exc:
            raise _unavailable(exc) from None


def _unavailable(exc: JobQueueUnavailable) -> SidecarError:
    return SidecarError(
        ErrorCode.MODEL_UNAVAILABLE,
        f"The job queue is unavailable: {exc}.",
        reason="queue_unavailable",
        retry_after_s=1,
    )


_FAILED_REASON = re.compile(r"([A-Z_]+): (.*)", re.DOTALL)


def error_of(failed_reason: str) -> dict[str, Any]:
    """BullMQ's ``failedReason`` (``"CODE: message"`` when the sidecar ran the job)."""
    match = _FAILED_REASON.fullmatch(failed_reason)
    if match and match[1] in ErrorCode.__members__:
        return {"code": match[1], "message": match[2]}
    return {"code": None, "message": failed_reason}


# --- the worker side -----------------------------------------------------------------------------


class JobRunner:
    """Runs one job through the request pipeline; the processor every queue's workers call."""

    def __init__(self, handle: Next, settings: Settings) -> None:
        self.handle = handle
        self.max_body_bytes = settings.limits.max_body_bytes

    async def __call__(self, job: JobInfo) -> Any:
        try:
            request = JobRequest.parse(job.data)
        except SidecarError as err:
            raise JobFailed(f"{err.code.value}: {err.message}", final=True) from None
        ex = self._exchange(job, request)
        reply = await self.handle(ex)
        try:
            status, answer = reply.status, reply.json()
            streamed = reply.stream is not None
        finally:
            await reply.aclose()
        if status < 400 and answer is not None and not streamed:
            return answer
        raise _failure(ex, status, answer)

    def _exchange(self, job: JobInfo, request: JobRequest) -> Exchange:
        raw = orjson.dumps(request.body)
        headers: CIMultiDict[str] = CIMultiDict(
            {
                "Content-Type": "application/json",
                "X-Sidecar-Priority": PRIORITY_OF.get(job.queue, "normal"),
            }
        )
        if request.user is not None:
            headers["X-Sidecar-User"] = request.user

        async def read_body(limit: int) -> bytes:
            if len(raw) > limit:
                raise BodyLimit
            return raw

        return Exchange(
            request_id=_request_id(job),
            method="POST",
            path=request.path,
            query="",
            headers=CIMultiDictProxy(headers),
            read_body=read_body,
        )


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._:-]")


def _request_id(job: JobInfo) -> str:
    """One per attempt, in the SPEC's request-id alphabet: ``job:ai-normal:j5f0c...:2``."""
    return _UNSAFE_ID.sub("_", f"job:{job.id}:{job.attempts + 1}")[:128]


def _failure(ex: Exchange, status: int, answer: dict[str, Any] | None) -> Exception:
    """What an error reply means for the job: wait for the rate limit, fail, or retry."""
    if status < 400:
        return JobFailed(f"{ErrorCode.INTERNAL.value}: the answer was not one JSON object")
    error = answer.get("error") if answer is not None else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    message = error.get("message") or f"HTTP {status}"
    if ex.limited_by is not None:  # the sidecar's own limit: room comes back by itself
        return JobDeferred(float(error.get("retry_after_s") or 1))
    if (
        code == ErrorCode.MODEL_UNAVAILABLE.value
        and ex.attempts == 0
        and error.get("retry_after_s")
    ):
        # Nothing was called: an open circuit, a resting provider or a shed request says when
        # to come back. Waiting for it spends no attempt (the backoff would fail the job while
        # the circuit is still open).
        return JobDeferred(float(error["retry_after_s"]))
    if isinstance(code, str) and code in ErrorCode.__members__:
        return JobFailed(f"{code}: {message}", final=not KINDS[ErrorCode(code)].retry)
    # Not the sidecar's envelope (cannot happen on model endpoints): retry what a retry may fix.
    return JobFailed(f"HTTP {status}: {message}", final=status < 500 and status != 429)


class JobWorkers:
    """Every queue's consumers, started and stopped together (``serve`` and ``worker``)."""

    def __init__(self, settings: Settings, queue: JobQueue, handle: Next) -> None:
        self.settings = settings
        self.queue = queue
        self.runner = JobRunner(handle, settings)
        self._consumers: list[Consumer] = []

    async def start(self) -> None:
        for priority, name in QUEUES.items():
            concurrency = self.settings.jobs.queues[priority].concurrency
            self._consumers.append(
                await self.queue.consume(name, self.runner, concurrency=concurrency)
            )

    def describe(self) -> str:
        queues = self.settings.jobs.queues
        return ", ".join(f"{name} x{queues[p].concurrency}" for p, name in QUEUES.items())

    async def stop(self) -> None:
        """Take no new job; running ones get ``jobs.drain_s`` to finish (then, with Redis,
        another worker takes them over once their lock expires)."""
        consumers, self._consumers = self._consumers, []
        drain_s = self.settings.jobs.drain_s
        await asyncio.gather(*(consumer.close(drain_s) for consumer in consumers))
