"""The telemetry facade the pipeline talks to: spans, metric instruments, stats, alerts.

Stages never touch exporters; they record through this object, whose names all come from
:mod:`sidecar.telemetry.names`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from sidecar.admission import Gates
from sidecar.background import Background
from sidecar.config import PRIORITIES, Settings
from sidecar.exchange import Exchange
from sidecar.telemetry import names as n
from sidecar.telemetry.alerts import WebhookAlerts
from sidecar.telemetry.batch import MetricBatch
from sidecar.telemetry.setup import OtelProviders
from sidecar.telemetry.stats import RollingStats

# A snapshot's suffix: a date (-2024-08-06, -20240806), a month-day (-0613) or -latest.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")


class ModelNames:
    """Folds model names into a bounded set for metric labels.

    Known names (the shipped list, every priced model, every configured one) are kept as they
    are; a dated snapshot keeps its family's name (``gpt-4o-2024-08-06`` → ``gpt-4o``), but only
    a snapshot: ``gpt-3.5-turbo-instruct`` or ``o1-pro`` are other models, priced apart, and
    become ``other`` when unknown rather than pose as their namesake. So a typo or a random
    string cannot create new time series, and no model's cost is counted under another's name.
    """

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.known = frozenset(n.KNOWN_MODELS) | frozenset(extra)
        self._folded: dict[str, str] = {}

    def fold(self, model: str | None) -> str:
        if not model:
            return "none"
        folded = self._folded.get(model)
        if folded is None:
            folded = self._fold(model)
            if len(self._folded) < 4096:
                self._folded[model] = folded
        return folded

    def _fold(self, model: str) -> str:
        if model in self.known:
            return model
        family = _SNAPSHOT.sub("", model)
        return family if family in self.known else n.OTHER


def configured_models(settings: Settings) -> set[str]:
    models = set(settings.models)
    for operation in settings.operations.values():
        models.update(fallback.split(":", 1)[0] for fallback in operation.fallbacks)
    return models


class Telemetry:
    def __init__(
        self, settings: Settings, providers: OtelProviders, priced: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.tracer = providers.tracer
        self.metrics = providers.instruments
        self.models = ModelNames(configured_models(settings) | set(priced))
        self.stats = RollingStats(
            window_s=settings.telemetry.stats_window_s, capacity=settings.telemetry.stats_capacity
        )
        self.alerts = WebhookAlerts(
            settings.alerts.webhook_url, dedup_s=settings.telemetry.alert_dedup_s
        )
        # Every measurement goes through the batch: the SDK is too slow for the request path.
        self.batch = MetricBatch()
        self.queue_wait = providers.meter.create_histogram(
            n.SIDECAR_QUEUE_WAIT,
            unit="s",
            description="How long requests that queued waited for a slot on their provider",
            explicit_bucket_boundaries_advisory=n.QUEUE_WAIT_BUCKETS_S,
        )
        self._gates: Gates | None = None
        self.security_findings = providers.meter.create_counter(
            n.SIDECAR_SECURITY_FINDINGS,
            unit="{finding}",
            description="Security findings by check, finding (technique or data type) and action",
        )

    def observe_circuits(self, states: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        """Export circuit states (0 closed, 1 half-open, 2 open) as an observable gauge."""

        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for provider, model, state in states():
                labels = {n.LABEL_PROVIDER: provider, n.LABEL_MODEL: self.models.fold(model)}
                yield Observation(int(state), labels)

        self.providers.meter.create_observable_gauge(
            n.SIDECAR_CIRCUIT_STATE,
            callbacks=[observe],
            # Not "1": the collector's Prometheus name normalisation suffixes a gauge of unit
            # "1" with _ratio, and the alert and the dashboard query sidecar_circuit_state.
            unit="{state}",
            description="Circuit breaker state: 0 closed, 1 half-open, 2 open",
        )

    def observe_background(self, background: Background) -> None:
        """Export how much work after the reply is waiting, and how much was dropped."""

        def depth(_: CallbackOptions) -> Iterable[Observation]:
            yield Observation(background.depth)

        def dropped(_: CallbackOptions) -> Iterable[Observation]:
            yield Observation(background.dropped)

        meter = self.providers.meter
        meter.create_observable_gauge(
            n.SIDECAR_BACKGROUND_DEPTH, callbacks=[depth], unit="{job}",
            description="Work after the reply waiting to run (cache writes, usage, webhooks)",
        )  # fmt: skip
        meter.create_observable_counter(
            n.SIDECAR_BACKGROUND_DROPPED, callbacks=[dropped], unit="{job}",
            description="Work after the reply dropped because the queue was full",
        )  # fmt: skip

    def observe_queues(self, gates: Gates) -> None:
        """Export priority admission per provider: queue depth per priority, limit, in flight.

        A process builds one pipeline; a benchmark may build several on one runtime: the
        gauges are created once and follow the latest pipeline's gates.
        """
        first = self._gates is None
        self._gates = gates
        if not first:
            return

        def depth(_: CallbackOptions) -> Iterable[Observation]:
            for gate in self._gates or ():
                for priority in PRIORITIES:
                    labels = {n.LABEL_PROVIDER: gate.provider, n.LABEL_PRIORITY: priority}
                    yield Observation(gate.depth(priority), labels)

        def limit(_: CallbackOptions) -> Iterable[Observation]:
            for gate in self._gates or ():
                yield Observation(gate.ceiling, {n.LABEL_PROVIDER: gate.provider})

        def in_flight(_: CallbackOptions) -> Iterable[Observation]:
            for gate in self._gates or ():
                yield Observation(gate.in_flight, {n.LABEL_PROVIDER: gate.provider})

        meter = self.providers.meter
        meter.create_observable_gauge(
            n.SIDECAR_QUEUE_DEPTH, callbacks=[depth], unit="{request}",
            description="Requests waiting for a slot on their provider, per priority",
        )  # fmt: skip
        meter.create_observable_gauge(
            n.SIDECAR_QUEUE_LIMIT, callbacks=[limit], unit="{request}",
            description="Model calls allowed in flight per provider (adaptive: 429s lower it)",
        )  # fmt: skip
        meter.create_observable_gauge(
            n.SIDECAR_QUEUE_IN_FLIGHT, callbacks=[in_flight], unit="{request}",
            description="Model calls in flight per provider",
        )  # fmt: skip

    def start(self, background: Background) -> None:
        self.alerts.start(background)
        self.batch.start()

    async def close(self) -> None:
        await self.alerts.close()
        await self.batch.close()
        await asyncio.to_thread(self.providers.shutdown)

    def labels(self, ex: Exchange, **extra: str) -> dict[str, AttributeValue]:
        """Bounded metric labels for an exchange; never the user."""
        return {
            n.LABEL_OPERATION: ex.operation,
            n.LABEL_MODEL: self.models.fold(ex.upstream_model or ex.model),
            **extra,
        }

    # --- events other stages report -------------------------------------------------------------
    def event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        """A span event on the current span (the attempt's, else the request's)."""
        trace.get_current_span().add_event(name, attributes or {})

    def retry(self, ex: Exchange, *, error_code: str, delay_s: float) -> None:
        self.event(
            n.EVENT_RETRY,
            {n.SIDECAR_ATTEMPT: ex.attempts, n.ERROR_TYPE: error_code, "sidecar.delay_s": delay_s},
        )
        self.batch.add(self.metrics.retries, 1, self.labels(ex, **{n.LABEL_ERROR_CODE: error_code}))

    def fallback(self, ex: Exchange, *, source: str, target: str, error_code: str) -> None:
        self.event(
            n.EVENT_FALLBACK,
            {
                n.LABEL_FALLBACK_FROM: source,
                n.LABEL_FALLBACK_TO: target,
                n.ERROR_TYPE: error_code,
            },
        )
        self.batch.add(
            self.metrics.fallbacks,
            1,
            {
                n.LABEL_OPERATION: ex.operation,
                n.LABEL_FALLBACK_FROM: self.models.fold(source),
                n.LABEL_FALLBACK_TO: self.models.fold(target),
            },
        )

    def cache_lookup(self, ex: Exchange, *, hit: bool) -> None:
        if hit:
            self.event(n.EVENT_CACHE_HIT)
        self.batch.add(
            self.metrics.cache_lookups,
            1,
            {n.LABEL_OPERATION: ex.operation, n.LABEL_CACHE_RESULT: "hit" if hit else "miss"},
        )

    def rate_limited(self, ex: Exchange, *, limit: int, retry_after_s: float, kind: str) -> None:
        self.event(
            n.EVENT_RATE_LIMITED,
            {
                "sidecar.limit": kind,
                "sidecar.limit.value": limit,
                "sidecar.retry_after_s": retry_after_s,
            },
        )
        self.batch.add(
            self.metrics.ratelimit_rejections,
            1,
            {n.LABEL_OPERATION: ex.operation, n.LABEL_LIMIT: kind},
        )

    def queued(self, ex: Exchange, wait_s: float, *, admitted: bool) -> None:
        """A request waited for a slot: admitted after ``wait_s``, or shed."""
        span = trace.get_current_span()
        span.set_attribute(n.SIDECAR_QUEUE_WAIT_MS, wait_s * 1000)
        if not admitted:
            span.add_event(
                n.EVENT_QUEUE_SHED,
                {n.GEN_AI_PROVIDER_NAME: ex.provider_name, n.SIDECAR_PRIORITY: ex.priority},
            )
        result = n.QUEUE_ADMITTED if admitted else n.QUEUE_SHED
        labels = {
            n.LABEL_PROVIDER: ex.provider_name,
            n.LABEL_PRIORITY: ex.priority,
            n.LABEL_QUEUE_RESULT: result,
        }
        self.batch.record(self.queue_wait, wait_s, labels)

    def budget_utilization(self, ex: Exchange, utilization: float) -> None:
        self.batch.record(
            self.metrics.budget_utilization, utilization, {n.LABEL_OPERATION: ex.operation}
        )

    def budget_exceeded(self, ex: Exchange, utilization: float) -> None:
        self.event(n.EVENT_BUDGET_EXCEEDED, {"sidecar.budget.utilization": utilization})
        self.budget_utilization(ex, utilization)

    def security_finding(
        self, check: str, finding: str, action: str, attributes: dict[str, Any] | None = None
    ) -> None:
        """One security finding: a span event (what, never the text) and a count."""
        self.event(
            n.EVENT_SECURITY_FINDING,
            {
                n.LABEL_SECURITY_CHECK: check,
                n.LABEL_SECURITY_FINDING: finding,
                n.LABEL_SECURITY_ACTION: action,
                **(attributes or {}),
            },
        )
        labels = {
            n.LABEL_SECURITY_CHECK: check,
            n.LABEL_SECURITY_FINDING: finding,
            n.LABEL_SECURITY_ACTION: action,
        }
        self.batch.add(self.security_findings, 1, labels)

    def unpriced(self, ex: Exchange, model: str) -> None:
        self.batch.add(
            self.metrics.cost_unpriced,
            1,
            {n.LABEL_OPERATION: ex.operation, n.LABEL_MODEL: self.models.fold(model)},
        )
