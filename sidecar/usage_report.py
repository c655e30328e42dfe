"""A user's cost report: ``GET /sidecar/usage`` and ``llm-sidecar usage``.

Totals, the split by model and by operation, what the cache saved and what fallbacks, retries
and failed calls cost come from the usage store (exact micro-dollars, summed by the database);
the budget from the month's counter, the same one budgets are enforced with. Recommendations are
computed from those numbers, each naming what to change.

A cost the sidecar does not know (an unpriced model) is never shown as $0: a row whose requests
are all unpriced has ``cost_usd: null``, every row and the totals say how many requests were
unpriced (``unpriced_requests``), and ``total_cost_usd`` is the sum of the known costs.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sidecar.backends import UsageGroup
from sidecar.errors import ErrorCode, SidecarError
from sidecar.pipeline.costs import MICROS, Costs, month_of
from sidecar.pipeline.identity import bounded_user

log = logging.getLogger(__name__)

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")


def parse_period(text: str) -> Period | None:
    for period in PERIODS:
        if text == period:
            return period
    return None


def period_start(period: Period, now: datetime) -> datetime:
    """The start (UTC) of the calendar day, ISO week (Monday) or month holding ``now``."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def usd(micros: int) -> str:
    """Micro-dollars as an exact decimal string of dollars."""
    return f"{Decimal(micros) / MICROS:.6f}"


SHORT_OUTPUT_TOKENS = 100  # answers this short rarely need the larger model of a family
ADVICE_MIN_REQUESTS = 10  # no advice on an operation seen fewer times than this
FALLBACK_SHARE = 0.2  # fallbacks costing this share of the total are worth a look


async def _breakdown(costs: Costs, user: str, since: datetime, until: datetime) -> list[UsageGroup]:
    """The user's records by operation and model; a database that cannot answer is a 503 that
    says so (its records wait in the journal), not a 500 with a traceback."""
    try:
        return await costs.log.store.breakdown(user, since, until)
    except Exception as exc:
        log.warning("usage report: the usage database did not answer: %s", exc)
        raise SidecarError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"The usage database did not answer ({type(exc).__name__}); calls go on and their "
            "records wait in the local journal until it is back. Retry shortly.",
            retry_after_s=5,
            reason="usage_store_unavailable",
        ) from None


async def build_usage(costs: Costs, user: str, period: Period, now: datetime) -> dict[str, Any]:
    user = bounded_user(user)
    since = period_start(period, now)
    # Read-your-writes: the records of calls already answered are committed a moment after
    # their reply (written ahead first); wait for them, briefly.
    await costs.log.flush(timeout_s=1.0)
    groups = await _breakdown(costs, user, since, now + timedelta(seconds=1))
    models = by_model(groups)
    total = sum(group.cost_micros for group in groups)
    budget = costs.budget_micros(user)
    await costs.corrections.flush()  # reservations of answered calls, corrected to their cost
    spent = await costs.counters.read(costs.budget_key(user, month_of(now)))
    return {
        "user": user,
        "period": period,
        "since": since.isoformat(),
        "until": now.isoformat(),
        "total_cost_usd": usd(total),
        "requests": sum(group.requests for group in groups),
        "unpriced_requests": sum(group.unpriced for group in groups),
        "by_model": [_model_row(row) for row in models],
        "by_operation": [_operation_row(group) for group in groups],
        "cache": {
            "hits": sum(group.cache_hits for group in groups),
            "saved_usd": usd(sum(group.saved_micros for group in groups)),
        },
        "fallbacks_and_retries": _fallbacks_and_retries(groups),
        "budget": {
            "month": month_of(now),
            "monthly_usd": usd(budget),
            "spent_usd": usd(spent),
            "remaining_usd": usd(max(0, budget - spent)),
            "utilization": round(spent / budget, 4) if budget else None,
            "enforced": costs.settings.budgets.enforce,
        },
        "recommendations": recommendations(costs, groups, spent, budget, now),
    }


def by_model(groups: list[UsageGroup]) -> list[UsageGroup]:
    """The groups summed over operations, one per model, most costly first."""
    merged: dict[str, UsageGroup] = {}
    for group in groups:
        known = merged.get(group.model)
        merged[group.model] = replace(group, operation="*") if known is None else _sum(known, group)
    return sorted(merged.values(), key=lambda row: (-row.cost_micros, -row.requests, row.model))


def _sum(a: UsageGroup, b: UsageGroup) -> UsageGroup:
    counts = {f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(UsageGroup)[2:]}
    return UsageGroup(operation="*", model=a.model, **counts)


def known_cost(group: UsageGroup) -> str | None:
    """The group's cost; None (unknown) when none of its requests had a price."""
    return None if group.unpriced == group.requests else usd(group.cost_micros)


def _model_row(row: UsageGroup) -> dict[str, Any]:
    return {
        "model": row.model,
        "requests": row.requests,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "images": row.images,
        "cost_usd": known_cost(row),
        "unpriced_requests": row.unpriced,
    }


def _operation_row(group: UsageGroup) -> dict[str, Any]:
    return {
        "operation": group.operation,
        "model": group.model,
        "requests": group.requests,
        "mean_output_tokens": round(group.output_tokens / group.requests, 1),
        "cost_usd": known_cost(group),
        "unpriced_requests": group.unpriced,
        "cache_hits": group.cache_hits,
        "saved_usd": usd(group.saved_micros),
    }


def _fallbacks_and_retries(groups: list[UsageGroup]) -> dict[str, Any]:
    return {
        "fallback_requests": sum(group.fallbacks for group in groups),
        "fallback_cost_usd": usd(sum(group.fallback_micros for group in groups)),
        "retried_requests": sum(group.retried for group in groups),
        "extra_upstream_calls": sum(group.extra_calls for group in groups),
        # A failed upstream call is free, except a stream cut mid-way: its tokens are billed.
        "failed_requests": sum(group.failed for group in groups),
        "failed_cost_usd": usd(sum(group.failed_micros for group in groups)),
    }


def recommendations(
    costs: Costs, groups: list[UsageGroup], spent: int, budget: int, now: datetime
) -> list[str]:
    advice: list[str] = []
    models = by_model(groups)
    total = sum(row.cost_micros for row in models)
    for row in models:
        share = row.cost_micros / total if total else 0.0
        cheaper = _cheaper_sibling(costs, row.model)
        if share >= 0.5 and len(models) > 1 and cheaper is not None:
            advice.append(
                f"{row.model} is {share:.0%} of this period's cost; {cheaper} costs less per token"
            )
    advice += _short_answers(costs, groups)
    saved = sum(group.saved_micros for group in groups)
    if saved:
        hits = sum(group.cache_hits for group in groups)
        advice.append(f"the response cache saved ${usd(saved)} over {hits:,} hits")
    fallback = sum(group.fallback_micros for group in groups)
    if total and fallback / total >= FALLBACK_SHARE:
        advice.append(
            f"{fallback / total:.0%} of the cost went to fallback models: the primary models "
            "failed often (see /sidecar/report and the breakers in /readyz)"
        )
    advice += _projection(spent, budget, now)
    return advice


def _short_answers(costs: Costs, groups: list[UsageGroup]) -> list[str]:
    """Operations whose answers are short, on a model with a cheaper sibling."""
    advice = []
    for group in groups:
        if group.requests < ADVICE_MIN_REQUESTS or group.images:
            continue
        mean = group.output_tokens / group.requests
        cheaper = _cheaper_sibling(costs, group.model)
        if mean <= SHORT_OUTPUT_TOKENS and cheaper is not None:
            advice.append(
                f"{group.operation} answers average {mean:.0f} output tokens on {group.model}; "
                f"{cheaper} is cheaper for short answers: request it for this operation"
            )
    return advice


def _projection(spent: int, budget: int, now: datetime) -> list[str]:
    if not budget or not spent:
        return []
    start = period_start("month", now)
    elapsed = (now - start).total_seconds()
    days = ((start + timedelta(days=32)).replace(day=1) - start).total_seconds()
    projected = spent * days / max(elapsed, 3600.0)
    if projected <= budget:
        return []
    return [
        f"at this pace the month ends near ${Decimal(int(projected)) / MICROS:.2f}, over "
        f"the ${Decimal(budget) / MICROS:.2f} budget: raise budgets.users or slow down"
    ]


def _cheaper_sibling(costs: Costs, model: str) -> str | None:
    """A model of the same family priced lower (``gpt-4o`` → ``gpt-4o-mini``)."""
    for candidate in (f"{model}-mini", f"{model}-nano"):
        if costs.pricing.more_expensive(candidate, model) is True:
            return candidate
    return None
