"""Priority admission: every upstream model call holds a slot on its provider (rules:
:mod:`sidecar.admission`).

Where it sits: below ``Resilience``, above the attempt span, so it runs once per upstream
attempt. There the provider is known (routing ran, and a fallback has switched it), cache hits
and single-flight followers never get this far, and a retry or a fallback waits for a slot of
the provider it is about to call: a fallback to another provider does not queue behind the one
that is full. The attempt's client span starts once a slot is held, so it times the upstream
alone; the wait goes on the request's span (``sidecar.queue.wait_ms``) and into
``sidecar.queue.wait``, and counts as upstream time (as a retry's backoff does), not as sidecar
overhead. Only model calls take a slot: pass-through requests are forwarded untouched.

A request that waits past its priority's ``admission.max_wait_ms`` (or its deadline) is shed
with :class:`Shed` before anything is sent upstream. How ``Resilience`` reads it:

- ``retry=False``: waiting again for the same provider would hit the same wall;
- ``fallback=True, account=True``: the chain skips this provider's other models (they share its
  slots) and may go on to another provider, which has its own;
- the breaker records ``failed = fallback and not account``, i.e. no failure: a full queue says
  nothing about the model's health and never opens a circuit. It is still a call in the
  breaker's window, so a half-open circuit's single probe skips the queue (a shed would close
  the circuit without asking the upstream); it may exceed the limit by that one call.

The client still gets a retryable answer: 503 ``MODEL_UNAVAILABLE`` with ``Retry-After`` (an
estimate from the queue and the calls' hold time) and ``retry: true`` in the envelope, plus
``x-should-retry: false`` like every final error (the sidecar is the one retry loop).

The slot is given back when the upstream call is over: for a whole body as soon as it is read,
for a stream through ``Reply.release``, which ``Reply.finish`` calls synchronously in a
``finally`` however the stream ends (completed, upstream error, client gone, never started), so
no cancelled await can skip it. The upstream's verdict adapts the limit: a 429 cuts it, a
success grows it back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from sidecar.admission import Gate, Gates, Permit
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.openai_api import is_model_call
from sidecar.pipeline.base import Next
from sidecar.runtime import Runtime
from sidecar.upstream.breaker import State
from sidecar.upstream.classify import UpstreamFailure


class Shed(UpstreamFailure):
    """No slot within the wait limit: not retried here, retryable for the client later.

    ``retry`` is False for Resilience (see the module docstring); the answer to the client
    still says ``retry: true`` and carries ``Retry-After``, which the base class only adds to
    retryable errors.
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(
            ErrorCode.MODEL_UNAVAILABLE,
            message,
            retry=False,
            fallback=True,
            account=True,
            retry_after_s=retry_after_s,
            reason="queue_timeout",
        )

    @property
    def retry_after_whole_s(self) -> int:
        return max(1, math.ceil(self.retry_after_s or 1))

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after_whole_s)}

    def envelope(self, request_id: str) -> dict[str, Any]:
        body = super().envelope(request_id)
        body["error"].update(retry=True, retry_after_s=self.retry_after_whole_s)
        return body


class Admission:
    def __init__(self, rt: Runtime) -> None:
        self.gates = Gates(rt.settings)
        self._gates = self.gates.gates  # by provider, looked up on every call
        self.breakers = rt.breakers
        self.telemetry = rt.telemetry
        rt.telemetry.observe_queues(self.gates)

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        if not is_model_call(ex.method, ex.path):
            return await call_next(ex)
        gate = self._gates[ex.provider_name]
        permit = gate.enter() or await self._queue(ex, gate)
        try:
            reply = await call_next(ex)
        except BaseException as exc:
            if isinstance(exc, SidecarError) and _throttled(exc):
                gate.throttled(permit)
            permit.release()
            raise
        gate.succeeded()
        if reply.stream is None:
            permit.release()
        else:
            reply.release = _Release(reply.release, permit)
        return reply

    async def _queue(self, ex: Exchange, gate: Gate) -> Permit:
        if self._probe(ex):
            return gate.enter_anyway()
        max_wait_s = self.gates.max_wait_s[ex.priority]
        limit = f"admission.max_wait_ms.{ex.priority} is {max_wait_s * 1000:.0f}"
        if ex.deadline is not None and ex.deadline - time.monotonic() < max_wait_s:
            max_wait_s, limit = ex.deadline - time.monotonic(), "the request's deadline came"
        started = time.perf_counter()
        permit = await gate.wait(ex.priority, ex.user, max_wait_s)
        waited = time.perf_counter() - started
        ex.upstream_s += waited  # waiting for the provider's capacity is not sidecar overhead
        self.telemetry.queued(ex, waited, admitted=permit is not None)
        if permit is None:
            raise Shed(
                f"{ex.provider_name} is at its limit of {gate.ceiling} concurrent calls; this "
                f"{ex.priority}-priority request waited {waited:.1f} s for a slot ({limit}) "
                "and was not sent.",
                gate.retry_after_s(),
            )
        return permit

    def _probe(self, ex: Exchange) -> bool:
        """Is this call a half-open circuit's probe? (Resilience let it through the breaker.)"""
        breaker = self.breakers.get(ex.provider_name, ex.upstream_model or ex.model or "")
        return breaker.state is State.HALF_OPEN


def _throttled(err: SidecarError) -> bool:
    """The provider's "slow down" (a retryable 429), not its quota or a request too large."""
    return err.upstream_status == 429 and err.code is ErrorCode.RATE_LIMIT and err.retry


class _Release:
    """The reply's own release (the upstream connection), then the slot: once, synchronously."""

    __slots__ = ("permit", "upstream")

    def __init__(self, upstream: Callable[[], None] | None, permit: Permit) -> None:
        self.upstream = upstream
        self.permit = permit

    def __call__(self) -> None:
        try:
            if self.upstream is not None:
                self.upstream()
        finally:
            self.permit.release()
