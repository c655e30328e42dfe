"""Security checks around a model call: what goes in (before rate limits and the cache) and what
comes out (below the cache, so it only ever stores checked answers).

Input (:class:`InputChecks`), in order, each from ``security.*``:

- size: more than ``limits.max_messages`` messages (or Responses input items) is a 400;
- ``injection``: the prompt-attack detector (:mod:`sidecar.security.injection`) reads the
  user, tool and document content of the request (system prompts only with
  ``check_system_prompts``; not embeddings inputs, which no model follows); ``block``
  answers 400 ``INVALID_INPUT`` (``reason: prompt_injection``, the techniques named, never
  the text), ``flag`` lets it through; both record a finding. A lower
  ``injection_shadow_threshold`` is counted (action ``shadow``) and never acted on: a
  stricter setting tried on live traffic;
- ``duplicates``: the same content from the same user more than ``max`` times in ``per_s``
  seconds is a 400 (``reason: duplicate``); the count lives in the shared counters, so it
  holds across instances (one more Redis round trip, only when the guard is on);
- ``moderation``: the provider's ``/v1/moderations`` is asked about the same texts, through the
  whole pipeline like any call (classification, retries, breaker, telemetry), within
  ``moderation_timeout_s``; a flagged input is a 400 (``reason: content_policy``). If the
  moderation call fails, ``fail_open`` lets the request through (a finding says so) and
  ``fail_closed`` answers 503 ``MODEL_UNAVAILABLE``.

Output (:class:`OutputChecks`): secrets and personal data in answers
(:mod:`sidecar.security.secrets`), an action per type from ``security.output``: ``redact``
(``[REDACTED:TYPE]``), ``block`` (400 ``INVALID_INPUT``, ``reason: sensitive_output``; a stream
is ended as stopped by policy, never counted as an upstream failure), ``flag``. Streams go
through :class:`~sidecar.security.stream_redact.RedactingObserver`, which holds back at most a
small window so a secret split across chunks is still caught.

Every finding is a span event and a ``sidecar.security.findings`` count (check, technique or
type, action), and a block or flag goes to ``alerts.webhook_url`` (deduplicated).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.backends import Limit
from sidecar.config import Settings
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.openai_api import is_model_call
from sidecar.pipeline.base import Next
from sidecar.pipeline.ratelimit import user_tag
from sidecar.runtime import Runtime
from sidecar.security.injection import Finding, InjectionDetector, texts_by_role
from sidecar.security.secrets import Finding as SecretFinding
from sidecar.security.secrets import Policy, blocked_error, redact_answer
from sidecar.security.stream_redact import RedactingObserver
from sidecar.stream import StreamEnd
from sidecar.telemetry.recorder import Telemetry

MODERATIONS = "moderations"
EMBEDDINGS = "embeddings"


class InputChecks:
    def __init__(self, rt: Runtime) -> None:
        settings = rt.settings
        self.security = settings.security
        self.max_messages = settings.limits.max_messages
        self.telemetry: Telemetry = rt.telemetry
        self.counters = rt.backends.counters
        self.prefix = settings.backends.redis_prefix + "dup:"
        self.detector: InjectionDetector | None = None
        if self.security.injection != "off":  # loaded once: the model file is read here
            self.detector = InjectionDetector.load(
                self.security.injection_threshold, self.security.injection_shadow_threshold
            )
        # The whole pipeline, for the moderation call; set once it is composed.
        self.handle: Next | None = None

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        if ex.body is None or ex.path == MODERATIONS or not is_model_call(ex.method, ex.path):
            return await call_next(ex)
        self._check_size(ex.body)
        # The body is walked once; every check reads the same (role, text) pairs.
        texts = list(texts_by_role(ex.body, check_system=self.security.check_system_prompts))
        # Embedding inputs are indexed, never obeyed: a document quoting an attack (a security
        # write-up, a phishing sample) must still be indexable.
        if texts and self.detector is not None and ex.path != EMBEDDINGS:
            self._injection(ex, self.detector.check_texts(texts))
        if texts and self.security.duplicates.max:
            await self._duplicates(ex, [text for _, text in texts])
        if texts and self.security.moderation != "off":
            await self._moderate(ex, [text for _, text in texts])
        return await call_next(ex)

    def _check_size(self, body: dict[str, Any]) -> None:
        for key in ("messages", "input"):
            items = body.get(key)
            if isinstance(items, list) and len(items) > self.max_messages:
                raise SidecarError(
                    ErrorCode.INVALID_INPUT,
                    f"'{key}' has {len(items)} items; the sidecar accepts at most "
                    f"{self.max_messages} (limits.max_messages).",
                    reason="too_many_messages",
                    param=key,
                )

    def _injection(self, ex: Exchange, findings: list[Finding]) -> None:
        if not findings:
            return
        acting = [finding for finding in findings if not finding.shadow]
        action = self.security.injection if acting else "shadow"
        for finding in findings:
            self.telemetry.security_finding(
                "injection",
                finding.technique,
                "shadow" if finding.shadow else action,
                {"sidecar.security.score": finding.score, "sidecar.security.role": finding.role},
            )
        if not acting:
            return
        techniques = sorted({finding.technique for finding in acting})
        self._alert(ex, "injection", techniques, action)
        if action == "block":
            raise SidecarError(
                ErrorCode.INVALID_INPUT,
                "The request was refused by the sidecar's prompt-injection check (techniques: "
                f"{', '.join(techniques)}). If this is a false positive, rephrase the input or "
                "ask the operator to set security.injection to flag.",
                reason="prompt_injection",
            )

    async def _duplicates(self, ex: Exchange, texts: list[str]) -> None:
        guard = self.security.duplicates
        digest = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
        key = f"{self.prefix}{{{user_tag(ex.user)}}}:{digest[:32]}"
        admission = await self.counters.admit([Limit(key, guard.max, guard.per_s)])
        if admission.allowed:
            return
        self.telemetry.security_finding("duplicate", "duplicate", "block")
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"The same content was sent more than {guard.max} times in {guard.per_s:g} s by "
            f"this user (security.duplicates); change it, or send it again once "
            f"{guard.per_s:g} s have passed since the first of them.",
            reason="duplicate",
        )

    async def _moderate(self, ex: Exchange, texts: list[str]) -> None:
        try:
            # The check's own deadline ends it as a TIMEOUT inside the pipeline (recorded as
            # one); this outer bound is only a backstop should an answer hang past it.
            async with asyncio.timeout(self.security.moderation_timeout_s + 1.0):
                results = await self._moderation(ex, texts)
        except (TimeoutError, ModerationFailed) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else str(exc)
            if self.security.moderation == "fail_closed":
                self.telemetry.security_finding("moderation", "unavailable", "block")
                raise SidecarError(
                    ErrorCode.MODEL_UNAVAILABLE,
                    f"The moderation check could not be made ({reason}) and the sidecar is "
                    "configured to refuse requests it cannot check (security.moderation: "
                    "fail_closed). Retry shortly.",
                    retry_after_s=5,
                    reason="moderation_unavailable",
                ) from None
            self.telemetry.security_finding("moderation", "unavailable", "allow")
            return
        categories = sorted({c for result in results for c in _flagged_categories(result)})
        if not any(result.get("flagged") is True for result in results):
            return
        for category in categories or ["flagged"]:
            self.telemetry.security_finding("moderation", category, "block")
        self._alert(ex, "moderation", categories, "block")
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            "The provider's moderation check flagged the input"
            + (f" ({', '.join(categories)})." if categories else "."),
            reason="content_policy",
        )

    async def _moderation(self, ex: Exchange, texts: list[str]) -> list[dict[str, Any]]:
        """The moderation results for ``texts``, asked through the whole pipeline."""
        if self.handle is None:
            raise ModerationFailed("the pipeline is not composed")
        body = orjson.dumps({"model": self.security.moderation_model, "input": texts})

        async def read_body(limit: int) -> bytes:
            return body

        headers = CIMultiDictProxy(
            CIMultiDict({"Content-Type": "application/json", "X-Sidecar-User": ex.user})
        )
        check = Exchange(f"{ex.request_id}-moderation", "POST", MODERATIONS, "", headers, read_body)
        check.deadline = time.monotonic() + self.security.moderation_timeout_s
        reply = await self.handle(check)
        try:
            if reply.status != 200:
                raise ModerationFailed(f"HTTP {reply.status}")
            answer = reply.json()
        finally:
            await reply.aclose()
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise ModerationFailed("no results in the answer")
        return [result for result in results if isinstance(result, dict)]

    def _alert(self, ex: Exchange, check: str, found: Iterable[str], action: str) -> None:
        security_alert(self.telemetry, ex, check, found, action)


def security_alert(
    telemetry: Telemetry, ex: Exchange, check: str, found: Iterable[str], action: str
) -> None:
    """A block or flag to ``alerts.webhook_url`` (deduplicated): what was found, never the text."""
    telemetry.alerts.notify(
        ("security", check, ex.operation, action),
        {
            "alert": "security_finding",
            "check": check,
            "found": sorted(set(found)),
            "action": action,
            "operation": ex.operation,
            "request_id": ex.request_id,
        },
    )


class ModerationFailed(Exception):
    """The moderation call did not give an answer to go by."""


def _flagged_categories(result: dict[str, Any]) -> list[str]:
    categories = result.get("categories")
    if not isinstance(categories, dict):
        return []
    return [str(name) for name, flagged in categories.items() if flagged is True]


class OutputChecks:
    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        self.policy = Policy.of(settings.security.output)
        self.telemetry = telemetry

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        reply = await call_next(ex)
        if not self.policy.enabled or not is_model_call(ex.method, ex.path):
            return reply
        if reply.stream is None:
            return await self._answer(ex, reply)
        observer = RedactingObserver(self.policy)
        reply.observers.append(observer)

        async def report(end: StreamEnd) -> None:
            self._report(ex, observer.findings)

        reply.finishers.append(report)
        return reply

    async def _answer(self, ex: Exchange, reply: Reply) -> Reply:
        answer = reply.json() if reply.status == 200 else None  # parsed once per reply
        if answer is None:
            return reply
        result = redact_answer(answer, self.policy)  # in place: the parsed answer stays current
        self._report(ex, result.findings)
        if result.block:
            await reply.aclose()
            raise blocked_error(result.blocked_types)
        if result.changed:
            reply.body = orjson.dumps(answer)
        return reply

    def _report(self, ex: Exchange, findings: Sequence[SecretFinding]) -> None:
        """Each finding counted; blocks and flags also to the webhook, one alert per action."""
        for finding in findings:
            self.telemetry.security_finding("output", finding.type, finding.action)
        for action in ("block", "flag"):
            found = [finding.type for finding in findings if finding.action == action]
            if found:
                security_alert(self.telemetry, ex, "output", found, action)
