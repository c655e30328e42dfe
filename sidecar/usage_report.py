"""A user's cost report: ``GET /sidecar/usage`` and ``llm-sidecar usage``.

Totals and the split by model come from the usage store (exact micro-dollars, summed by the
database); the budget from the month's counter, the same one budgets are enforced with.
Recommendations are computed from those numbers, each naming what to change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sidecar.backends import ModelUsage
from sidecar.pipeline.costs import MICROS, Costs, month_of
from sidecar.pipeline.identity import bounded_user

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


async def build_usage(costs: Costs, user: str, period: Period, now: datetime) -> dict[str, Any]:
    user = bounded_user(user)
    since = period_start(period, now)
    rows = await costs.log.store.by_model(user, since, now + timedelta(seconds=1))
    total = sum(row.cost_micros for row in rows)
    budget = costs.budget_micros(user)
    spent = await costs.counters.read(costs.budget_key(user, month_of(now)))
    return {
        "user": user,
        "period": period,
        "since": since.isoformat(),
        "until": now.isoformat(),
        "total_cost_usd": usd(total),
        "requests": sum(row.requests for row in rows),
        "by_model": [_model_row(row) for row in rows],
        "budget": {
            "month": month_of(now),
            "monthly_usd": usd(budget),
            "spent_usd": usd(spent),
            "remaining_usd": usd(max(0, budget - spent)),
            "utilization": round(spent / budget, 4) if budget else None,
            "enforced": costs.settings.budgets.enforce,
        },
        "recommendations": recommendations(costs, rows, spent, budget, now),
    }


def _model_row(row: ModelUsage) -> dict[str, Any]:
    return {
        "model": row.model,
        "requests": row.requests,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "images": row.images,
        "cost_usd": usd(row.cost_micros),
    }


def recommendations(
    costs: Costs, rows: list[ModelUsage], spent: int, budget: int, now: datetime
) -> list[str]:
    advice: list[str] = []
    total = sum(row.cost_micros for row in rows)
    for row in rows:
        share = row.cost_micros / total if total else 0.0
        cheaper = _cheaper_sibling(costs, row.model)
        if share >= 0.5 and len(rows) > 1 and cheaper is not None:
            advice.append(
                f"{row.model} is {share:.0%} of this period's cost; {cheaper} costs less per "
                "token — route operations with short answers to it"
            )
    if budget and spent:
        start = period_start("month", now)
        elapsed = (now - start).total_seconds()
        days = ((start + timedelta(days=32)).replace(day=1) - start).total_seconds()
        projected = spent * days / max(elapsed, 3600.0)
        if projected > budget:
            advice.append(
                f"at this pace the month ends near ${Decimal(int(projected)) / MICROS:.2f}, over "
                f"the ${Decimal(budget) / MICROS:.2f} budget: raise budgets.users or slow down"
            )
    return advice


def _cheaper_sibling(costs: Costs, model: str) -> str | None:
    """A model of the same family priced lower (``gpt-4o`` → ``gpt-4o-mini``)."""
    for candidate in (f"{model}-mini", f"{model}-nano"):
        if costs.pricing.more_expensive(candidate, model) is True:
            return candidate
    return None
