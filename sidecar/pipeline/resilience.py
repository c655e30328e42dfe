"""Retries, fallback chains and circuit breakers around the upstream call.

For each model in the chain (the requested model, then the operation's fallbacks after it):
skip it if its circuit is open; otherwise try it up to ``max_attempts`` times, retrying only
what the classification table says is retryable, with full-jitter exponential backoff or the
upstream's own retry hint, while the retry budget allows and the request's single deadline has
room. Fall back only on failures another model can help with. Once a stream has started, no
retry: its failures reach the client as an error event.

This is a plain loop rather than a retry library: every decision depends on the per-request
deadline, the breaker, the budget and the chain, and the happy path costs one breaker check.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.openai_api import MODEL_ENDPOINTS
from sidecar.pipeline.base import Next
from sidecar.pipeline.routing import Route
from sidecar.runtime import Runtime
from sidecar.stream import NO_EVENTS, EndReason, StreamEnd
from sidecar.upstream.breaker import CircuitBreaker, State
from sidecar.upstream.classify import UpstreamFailure, classify_exception

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """One link of a fallback chain: a model, and for images a quality (``dall-e-3:hd``)."""

    model: str
    quality: str | None = None

    @classmethod
    def parse(cls, text: str, *, images: bool) -> Target:
        if images and ":" in text:
            model, quality = text.rsplit(":", 1)
            return cls(model, quality)
        return cls(text)

    def __str__(self) -> str:
        return f"{self.model}:{self.quality}" if self.quality else self.model


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: Callable[[], float]) -> float:
    """AWS-style full jitter: uniform in [0, min(cap, base * 2^attempt))."""
    return rng() * min(cap_s, base_s * 2.0**attempt)


class Resilience:
    def __init__(
        self, rt: Runtime, route: Route, *, rng: Callable[[], float] = random.random
    ) -> None:
        self.config = rt.settings.resilience
        self.route = route
        self.telemetry = rt.telemetry
        self.breakers = rt.breakers
        self.budget = rt.budget
        self.sleep = rt.sleep
        self.rng = rng

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        ex.deadline = time.monotonic() + (ex.op.deadline_s or self.config.deadline_s)
        if ex.path not in MODEL_ENDPOINTS or ex.model is None:
            return await call_next(ex)  # pass-through: no model to retry or fall back on
        failure: SidecarError | None = None
        for index, target in enumerate(self.chain(ex)):
            if index > 0:  # only reached when the requested model failed: the chain is lazy
                self._switch(ex, target, failure)
            breaker = self.breakers.get(ex.provider_name, target.model)
            if self.breakers.provider_resting(ex.provider_name) or not breaker.allow():
                failure = failure or _circuit_open(ex, breaker)
                continue
            try:
                return await self._attempts(ex, call_next, breaker)
            except UpstreamFailure as err:
                failure = err
                if not err.fallback:
                    raise
        assert failure is not None
        raise failure

    def chain(self, ex: Exchange) -> Iterator[Target]:
        """The requested model, then the fallbacks after it (all of them if it is not listed)."""
        images = ex.operation == "image-generation"
        assert ex.model is not None
        requested = Target(ex.upstream_model or ex.model, _quality(ex) if images else None)
        yield requested
        fallbacks = _targets(tuple(ex.op.fallbacks), images=images)
        position = _position(requested, fallbacks)
        rest = fallbacks[position + 1 :] if position is not None else fallbacks
        yield from (target for target in rest if target != requested)

    async def _attempts(self, ex: Exchange, call_next: Next, breaker: CircuitBreaker) -> Reply:
        key = (ex.provider_name, ex.upstream_model or "")
        self.budget.request(key)
        for attempt in range(ex.op.max_attempts):
            self._check_deadline(ex)
            try:
                reply = await call_next(ex)
            except SidecarError as err:
                failure = classify_exception(err)
                breaker.record(failed=failure.fallback)
                self._on_bad_credentials(ex, failure)
                delay = self._retry_delay(ex, failure, attempt, key)
                if delay is None:
                    raise failure from None
                self.telemetry.retry(ex, error_code=failure.code.value, delay_s=delay)
                # Waiting out the upstream's failure is upstream time, not sidecar overhead.
                waited = time.perf_counter()
                await self.sleep(delay)
                ex.upstream_s += time.perf_counter() - waited
            except asyncio.CancelledError:
                breaker.release()
                raise
            else:
                if reply.stream is None:
                    breaker.record(failed=False)
                else:
                    reply.observers.append(_BreakerVerdict(breaker))
                return reply
        raise AssertionError("unreachable: the last attempt either returns or raises")

    def _retry_delay(
        self, ex: Exchange, failure: UpstreamFailure, attempt: int, key: tuple[str, str]
    ) -> float | None:
        """Seconds to wait before retrying, or None when this model should not be retried."""
        if not failure.retry or attempt + 1 >= ex.op.max_attempts:
            return None
        if self.breakers.get(*key).state is State.OPEN:
            return None  # this failure tripped the breaker: fall back instead
        if failure.retry_after_s is not None:
            delay = failure.retry_after_s
        else:
            delay = full_jitter(
                attempt, self.config.backoff_base_s, self.config.backoff_cap_s, self.rng
            )
        assert ex.deadline is not None
        if time.monotonic() + delay >= ex.deadline:
            return None  # waiting would take us past the deadline: better fall back now
        if not self.budget.try_retry(key):
            return None
        return delay

    def _check_deadline(self, ex: Exchange) -> None:
        assert ex.deadline is not None
        if time.monotonic() >= ex.deadline:
            raise UpstreamFailure(
                ErrorCode.TIMEOUT,
                "The request's deadline passed before the model answered.",
                retry=False,
                fallback=False,
            )

    def _switch(self, ex: Exchange, target: Target, failure: SidecarError | None) -> None:
        source = ex.upstream_model or ex.model or ""
        ex.provider_name, ex.provider, model = self.route(target.model)
        ex.set_model(model or target.model)
        if target.quality is not None and ex.body is not None:
            ex.body["quality"] = target.quality
            ex.body_changed = True
        original = ex.fallback.split("->", 1)[0] if ex.fallback else source
        ex.fallback = f"{original}->{target}"
        code = failure.code.value if failure else "UNKNOWN"
        self.telemetry.fallback(ex, source=source, target=str(target), error_code=code)
        log.info(
            "request %s: %s failed (%s), falling back to %s", ex.request_id, source, code, target
        )

    def _on_bad_credentials(self, ex: Exchange, failure: UpstreamFailure) -> None:
        if not failure.bad_credentials:
            return
        self.breakers.rest_provider(ex.provider_name)
        log.error("provider %s rejected our credentials; resting it", ex.provider_name)
        self.telemetry.alerts.notify(
            ("bad_credentials", ex.provider_name),
            {"alert": "bad_credentials", "provider": ex.provider_name, "request_id": ex.request_id},
        )


@functools.cache
def _targets(texts: tuple[str, ...], *, images: bool) -> tuple[Target, ...]:
    """Parsed once per configured chain (the configuration is fixed for the process)."""
    return tuple(Target.parse(text, images=images) for text in texts)


def _quality(ex: Exchange) -> str | None:
    quality = (ex.body or {}).get("quality")
    return quality if isinstance(quality, str) else None


def _position(requested: Target, chain: tuple[Target, ...]) -> int | None:
    for i, target in enumerate(chain):
        if target == requested:
            return i
    for i, target in enumerate(chain):
        if target.model == requested.model and requested.quality is None:
            return i
    return None


def _circuit_open(ex: Exchange, breaker: CircuitBreaker) -> UpstreamFailure:
    return UpstreamFailure(
        ErrorCode.MODEL_UNAVAILABLE,
        f"{ex.upstream_model} on {ex.provider_name} is failing; its circuit is open "
        f"for another {breaker.retry_in_s:.1f} s.",
        retry=True,
        fallback=True,
        retry_after_s=breaker.retry_in_s or None,
    )


class _BreakerVerdict:
    """A stream counts for the breaker when it ends: cleanly, or with an upstream failure."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def on_event(self, event: bytes) -> bytes | None:
        return event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        if end.reason in (EndReason.COMPLETED, EndReason.UPSTREAM_ERROR):
            self.breaker.record(failed=end.upstream_failed)
        else:
            self.breaker.release()  # the client left, or we stopped it: no verdict on the upstream
        return NO_EVENTS
