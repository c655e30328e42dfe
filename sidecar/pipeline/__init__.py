"""The request pipeline: what happens to every proxied request, in order.

Each stage is ``async (exchange, call_next) -> Reply`` (see :mod:`sidecar.pipeline.base`). The
list below is the whole story of a request; the first stage is the outermost. Stages after
``Resilience`` run once per upstream attempt when a retry or fallback repeats them.

Stream observers (:mod:`sidecar.stream`) see each event in the order they were attached, which
is the reverse of this list: the innermost stage's observer first. So usage is read before the
attempt span ends, the attempt span ends before the breaker's verdict, and the request's
telemetry, outermost, sees the stream last, as the client will. A stage that transforms events
(redaction) therefore sits below every stage that should see the transformed text.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.pipeline.admission import Admission
from sidecar.pipeline.base import Next, Stage, compose
from sidecar.pipeline.body import ReadBody
from sidecar.pipeline.cache import ResponseCache
from sidecar.pipeline.call import UpstreamCall
from sidecar.pipeline.costs import Costs
from sidecar.pipeline.envelope import ErrorEnvelope
from sidecar.pipeline.identity import Identify
from sidecar.pipeline.ratelimit import RateLimitStage
from sidecar.pipeline.resilience import Resilience
from sidecar.pipeline.routing import Router
from sidecar.pipeline.security import InputChecks, OutputChecks
from sidecar.pipeline.telemetry import AttemptSpan, RequestTelemetry
from sidecar.pipeline.usage import CaptureUsage
from sidecar.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Pipeline:
    handle: Next  # the request's way through every stage
    cache: ResponseCache  # for DELETE /sidecar/cache (it knows the answers still in flight)
    costs: Costs  # for GET /sidecar/usage (budgets, prices, the usage log)


def build_pipeline(rt: Runtime) -> Pipeline:
    settings = rt.settings
    observe = settings.telemetry.enabled
    router = Router(settings)
    cache = ResponseCache(rt)
    costs = Costs(rt)
    screening = InputChecks(rt)
    stages: list[Stage | None] = [
        RequestTelemetry(rt.telemetry) if observe else None,  # server span, metrics, stats
        ErrorEnvelope(),  # any error below becomes the OpenAI error envelope
        ReadBody(settings.limits.max_body_bytes),  # size limit, JSON parsing
        Identify(settings),  # user, operation, priority, model, stream
        # message count, prompt-injection detector, duplicate guard, provider moderation
        screening,
        # requests per user x operation, tokens per user x model; one Redis round trip that
        # also reserves the budget and fetches the cache entry
        RateLimitStage(
            rt,
            lookahead=cache.key_for,
            budget=costs.budget_limit,
            over_budget=costs.over_budget,
            settle_budget=costs.settle_pending,
        ),
        # price the call, reserve it against the user's monthly budget, settle and record it
        costs,
        cache,  # answer from the response cache; store the upstream's answer after the reply
        # secrets and personal data in answers: redact, block or flag (the cache stores the
        # checked answer; the stages below see what the upstream sent)
        OutputChecks(settings, rt.telemetry),
        router,  # provider for the model
        # retries, fallback chains, circuit breakers, one deadline for all of them
        Resilience(rt, router.provider_for),
        # a slot on the provider per attempt: priority queue, shed past max wait, AIMD on 429s
        Admission(rt),
        AttemptSpan(rt.telemetry) if observe else None,  # client span per upstream attempt
        CaptureUsage(),  # token usage, answering model, finish reasons
    ]
    handle = compose([stage for stage in stages if stage is not None], UpstreamCall(rt.transport))
    screening.handle = handle  # the moderation call goes through the whole pipeline
    return Pipeline(handle, cache, costs)


__all__ = ["Next", "Pipeline", "Stage", "build_pipeline", "compose"]
