"""Retries, fallback chains and circuit breakers around the upstream call.

For each link of the chain — the requested model, then, when the operation's fallback chain
names it, the models after it — skip it if its circuit is open or its provider's account has
failed in this request; otherwise try it up to ``max_attempts`` times, retrying only what the
classification table says is retryable, with full-jitter exponential backoff or the upstream's
own retry hint, while the retry budget allows, the request's single deadline has room and the
request has upstream calls left (``resilience.max_calls``). Fall back only on failures another
model can help with. Once a stream has started, no retry: its failures reach the client as an
error event. The final error says ``x-should-retry: false``: the sidecar is the one retry loop.

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
from sidecar.openai_api import is_model_call
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


@dataclass(frozen=True, slots=True)
class Resolved:
    """A target routed to its provider: what is called, and the breaker and budget key."""

    provider: str
    model: str  # as the provider knows it
    quality: str | None
    label: str  # as configured, for headers and telemetry ("backup/gpt-4o", "dall-e-3:hd")

    @property
    def key(self) -> tuple[str, str]:
        return self.provider, self.model

    def same_call(self, other: Resolved) -> bool:
        return (self.provider, self.model, self.quality) == (
            other.provider,
            other.model,
            other.quality,
        )


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: Callable[[], float]) -> float:
    """AWS-style full jitter: uniform in [0, min(cap, base * 2^attempt))."""
    return rng() * min(cap_s, base_s * 2.0**attempt)


class Resilience:
    def __init__(
        self, rt: Runtime, route: Route, *, rng: Callable[[], float] = random.random
    ) -> None:
        self.settings = rt.settings
        self.config = rt.settings.resilience
        self.route = route
        self.telemetry = rt.telemetry
        self.breakers = rt.breakers
        self.budget = rt.budget
        self.pricing = rt.pricing
        self.sleep = rt.sleep
        self.rng = rng

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        deadline = time.monotonic() + (ex.op.deadline_s or self.config.deadline_s)
        # A caller's own sooner deadline (the moderation check's timeout) wins.
        ex.deadline = deadline if ex.deadline is None else min(ex.deadline, deadline)
        if not is_model_call(ex.method, ex.path) or ex.model is None:
            return await call_next(ex)  # pass-through: no model to retry or fall back on
        failure: UpstreamFailure | None = None
        spent: set[str] = set()  # providers whose account failed: their other models cannot help
        for index, target in enumerate(self.chain(ex)):
            if target.provider in spent:
                continue
            if ex.attempts >= self.config.max_calls:
                break
            if index > 0:  # only reached when the requested model failed: the chain is lazy
                self._switch(ex, target, failure)
            breaker = self.breakers.get(*target.key)
            if self.breakers.provider_resting(target.provider):
                failure = failure or self._resting(target.provider)
                continue
            if not breaker.allow():
                failure = failure or _circuit_open(ex, breaker)
                continue
            try:
                return await self._attempts(ex, call_next, breaker, target.key)
            except UpstreamFailure as err:
                failure = err
                if err.account:
                    spent.add(target.provider)
                if not err.fallback:
                    break
        assert failure is not None
        # The sidecar is the one retry loop: its final error tells SDKs not to retry on top.
        failure.sdk_retry = False
        raise failure

    def chain(self, ex: Exchange) -> Iterator[Resolved]:
        """The requested model, then the operation's fallbacks after it.

        A chain applies to the models it names: a model outside the chain is retried, never
        answered by another model; and a link priced above the requested model is skipped
        unless the operation allows pricier fallbacks. Entries are compared once routed,
        so ``sim/gpt-4o`` and ``gpt-4o`` on the same provider are the same link.
        """
        images = ex.operation == "image-generation"
        assert ex.model is not None
        requested = Resolved(
            ex.provider_name,
            ex.upstream_model or ex.model,
            _quality(ex) if images else None,
            ex.model,
        )
        yield requested
        chain = [
            self._resolve(target, ex.pinned_provider)
            for target in _targets(tuple(ex.op.fallbacks), images=images)
        ]
        position = _position(requested, chain)
        if position is None:
            return
        for link in chain[position + 1 :]:
            if link.same_call(requested):
                continue
            if not ex.op.allow_pricier_fallbacks and self._pricier(requested, link):
                continue  # a fallback must not cost more than what was asked for
            yield link

    def _pricier(self, requested: Resolved, link: Resolved) -> bool:
        return self.pricing.more_expensive(requested.model, link.model) is True

    def _resolve(self, target: Target, pinned: str | None) -> Resolved:
        provider, _, model = self.route(target.model, pinned)
        return Resolved(provider, model or target.model, target.quality, str(target))

    async def _attempts(
        self, ex: Exchange, call_next: Next, breaker: CircuitBreaker, key: tuple[str, str]
    ) -> Reply:
        self.budget.request(key)
        for attempt in range(ex.op.max_attempts):
            self._check_deadline(ex)
            try:
                reply = await call_next(ex)
            except SidecarError as err:
                failure = classify_exception(err)
                breaker.record(failed=failure.fallback and not failure.account)
                self._on_bad_credentials(ex, failure)
                delay = self._retry_delay(ex, failure, attempt, breaker, key)
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
        self,
        ex: Exchange,
        failure: UpstreamFailure,
        attempt: int,
        breaker: CircuitBreaker,
        key: tuple[str, str],
    ) -> float | None:
        """Seconds to wait before retrying, or None when this model should not be retried."""
        if not failure.retry or attempt + 1 >= ex.op.max_attempts:
            return None
        if ex.attempts >= self.config.max_calls:
            return None  # the request has used its upstream calls
        if breaker.state is State.OPEN:
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

    def _switch(self, ex: Exchange, target: Resolved, failure: SidecarError | None) -> None:
        source = ex.fallback.rsplit("->", 1)[1] if ex.fallback else (ex.model or "")
        ex.provider_name, ex.provider = target.provider, self.settings.providers[target.provider]
        ex.set_model(target.model)
        if target.quality is not None and ex.body is not None:
            ex.body["quality"] = target.quality
            ex.body_changed = True
        original = ex.fallback.split("->", 1)[0] if ex.fallback else (ex.model or "")
        ex.fallback = f"{original}->{target.label}"
        code = failure.code.value if failure else "UNKNOWN"
        self.telemetry.fallback(ex, source=source, target=target.label, error_code=code)
        log.info(
            "request %s: %s failed (%s), falling back to %s",
            ex.request_id,
            source,
            code,
            target.label,
        )

    def _resting(self, provider: str) -> UpstreamFailure:
        left = self.breakers.rest_left_s(provider)
        return UpstreamFailure(
            ErrorCode.MODEL_UNAVAILABLE,
            f"{provider} rejected the sidecar's credentials; it is not called for another "
            f"{left:.0f} s (fix its api_key_env, then restart or wait).",
            retry=True,
            fallback=True,
            retry_after_s=left or None,
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


def _position(requested: Resolved, chain: list[Resolved]) -> int | None:
    """Where the requested call stands in the chain; a quality-less request matches its model."""
    for i, link in enumerate(chain):
        if link.same_call(requested):
            return i
    if requested.quality is None:
        for i, link in enumerate(chain):
            if link.key == requested.key:
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
