"""Costs: every model call priced, kept within its user's monthly budget, and recorded durably.

Before the call the estimated cost (prompt estimate + ``max_tokens``, or the images asked for,
at the model's prices) is reserved against the user's budget for the calendar month (UTC), in
one atomic step, so concurrent requests cannot overshoot it: a reservation that does not fit
is refused with 429 ``QUOTA_EXCEEDED`` when ``budgets.enforce``. When the operation has a rate
limit, the reservation is one more limit (``kind="sum"``) in the rate limiter's decision: one
Redis round trip for both, all or nothing.

After the call the usage record is made durable before the reply goes on (see
:mod:`sidecar.usage_log`: a client never holds an answer whose record a crash could lose), and
the reservation is corrected to the real cost after the reply, summed per user and applied in
batches (:class:`sidecar.background.Coalescer`): until then the budget counts the reservation,
which is never less than the cost. A reservation refused while this instance still holds
corrections of the same user applies them at once and is checked once more, so a client that
waits for each answer is never refused because of its own answered calls (the refusal path
pays the extra round trip, never the hot path).

The budget counter is settled to the cost the usage record holds, so ``GET /sidecar/usage``
shows the same spend in its total and in its budget. An answer without usage is priced from
its counted tokens (the prompt's estimate and about a token per 4 characters of the answer;
the record is marked ``estimated``). A call that failed with no answer costs 0. A cost that
is unknown (the model, or the answering fallback, has no price) is recorded as unknown, never
as $0, and is not held against the budget: the report counts those requests as unpriced, and
``sidecar.cost.unpriced`` with one warning per model is the alarm to add the price.

Settled spend is also summed on its own counter (``<budget key>:spent``, without the
reservations of calls in flight): ``budgets.notify_at`` is checked on it as corrections are
applied, and crossing it sends one notification per user per month.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sidecar.backends import Limit, UsageRecord, Window
from sidecar.background import Coalescer
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply, Usage
from sidecar.openai_api import is_model_call
from sidecar.pipeline.base import Next
from sidecar.pipeline.ratelimit import SETTLE_EVERY_S, user_tag
from sidecar.runtime import Runtime
from sidecar.stream import NO_EVENTS, StreamEnd
from sidecar.tokens import completion_budget, prompt_tokens
from sidecar.usage_log import UsageNotDurable

log = logging.getLogger(__name__)

MONTH_TTL_S = 40 * 86400  # a month's counter outlives the month, then expires
MICROS = Decimal(1_000_000)
UNLIMITED = 2**62  # the reservation "limit" when budgets only track (budgets.enforce: false)
UTILIZATION_FLOOR = 0.5  # sidecar.budget.utilization is recorded from half the budget on
_TERMINAL = (b"data: [DONE]", b"event: response.completed")  # held until the record is durable


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


class BudgetKeys:
    """The budget counter key of a user for the current month, remembered: formatting the
    month and hashing a long user name cost more than the rest of a reservation."""

    def __init__(self, prefix: str, *, capacity: int = 10_000) -> None:
        self.prefix = prefix
        self.capacity = capacity
        self.month = ""
        self._month_ends = 0.0  # epoch seconds when the month changes
        self._keys: dict[str, str] = {}

    def current(self, user: str) -> tuple[str, str]:
        """(key, month) for ``user`` now."""
        if time.time() >= self._month_ends:
            now = datetime.now(UTC)
            self.month, self._month_ends = month_of(now), _next_month(now).timestamp()
            self._keys.clear()
        key = self._keys.get(user)
        if key is None:
            if len(self._keys) >= self.capacity:
                self._keys.clear()
            key = self._keys[user] = self.key(user, self.month)
        return key, self.month

    def key(self, user: str, month: str) -> str:
        return f"{self.prefix}{{{user_tag(user)}}}:{month}"


def _next_month(now: datetime) -> datetime:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


class Costs:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.pricing = rt.pricing
        self.counters = rt.backends.counters
        self.log = rt.usage_log
        self.telemetry = rt.telemetry
        self.keys = BudgetKeys(rt.settings.backends.redis_prefix + "budget:")
        budgets = rt.settings.budgets
        self._budget = int(budgets.monthly_usd * MICROS)
        self._budgets = {user: int(usd * MICROS) for user, usd in budgets.users.items()}
        self._unpriced_warned: set[str] = set()
        self._notified: set[str] = set()  # budget keys this process has seen notified
        # A reservation is corrected to the real cost after the reply, in batches; so is the
        # settled spend that notify_at is checked on.
        self.corrections: Coalescer[BudgetCounter] = Coalescer(
            rt.background, "budget.settle", self._correct, SETTLE_EVERY_S
        )

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        if ex.model is None or not is_model_call(ex.method, ex.path):
            return await call_next(ex)
        charge = await self.reserve(ex)
        try:
            reply = await call_next(ex)
        except BaseException as exc:
            code = exc.code.value if isinstance(exc, SidecarError) else ex.error_code
            await self.settle(ex, charge, outcome=code or "error", failed=True)
            raise
        if reply.stream is None:
            failed = reply.status >= 400
            estimated = not failed and ex.usage is None and ex.cache != "HIT"
            if estimated:  # an answer without usage: priced from its counted tokens
                ex.usage = _estimated_usage(ex, _answer_tokens(reply.json()))
            outcome = f"HTTP_{reply.status}" if failed else "success"
            await self.settle(ex, charge, outcome=outcome, failed=failed, estimated=estimated)
        else:
            watcher = _StreamEnd(self, ex, charge)
            reply.observers.append(watcher)
            reply.finishers.append(watcher.finish)
        return reply

    # --- before the call ------------------------------------------------------------------------

    def budget_micros(self, user: str) -> int:
        return self._budgets.get(user, self._budget)

    def budget_key(self, user: str, month: str) -> str:
        return self.keys.key(user, month)

    def budget_limit(self, ex: Exchange) -> Limit | None:
        """The request's reservation as a limit the rate limiter checks in its round trip;
        None when there is nothing to reserve (not a model call, an unpriced model)."""
        if ex.model is None or not is_model_call(ex.method, ex.path):
            return None
        estimate = self._estimate(ex)
        if not estimate:
            return None
        key, _ = self.keys.current(ex.user)
        enforced = self.settings.budgets.enforce
        limit = self.budget_micros(ex.user) if enforced else UNLIMITED
        return Limit(key, limit, MONTH_TTL_S, cost=estimate, kind="sum")

    def over_budget(self, ex: Exchange, limit: Limit, spent: Window) -> SidecarError | None:
        """The answer to a reservation that does not fit (None when budgets only track)."""
        if not self.settings.budgets.enforce:
            return None
        budget, total, estimate = limit.limit, spent.count, limit.cost
        self.telemetry.budget_exceeded(ex, total / budget if budget else 1.0)
        counted = f"${_usd(total)} spent or reserved in {self.keys.month}"
        if total >= budget:
            message = (
                f"Monthly budget of ${_usd(budget)} for this user is used up ({counted}); this "
                f"request would cost up to ${_usd(estimate)}."
            )
        else:  # there is money left, only not enough for this request's worst case
            message = (
                f"This request's estimated cost of up to ${_usd(estimate)} would exceed the "
                f"${_usd(budget - total)} left of this user's monthly budget of ${_usd(budget)} "
                f"({counted}); ask for fewer tokens (max_tokens) or raise the budget (budgets)."
            )
        return SidecarError(ErrorCode.QUOTA_EXCEEDED, message, reason="budget_exceeded")

    async def settle_pending(self, key: str) -> bool:
        """Apply this instance's corrections not applied yet when some are for budget ``key``;
        whether there were (then a refused reservation is worth checking once more)."""
        if not self.corrections.pending(key):
            return False
        await self.corrections.flush()
        return True

    async def reserve(self, ex: Exchange) -> Charge:
        """Reserve the call's estimated cost against the user's budget for this month (done
        already when the rate limit's round trip carried it)."""
        key, month = self.keys.current(ex.user)
        if ex.budget_reserved is not None:
            key, reserved, total = ex.budget_reserved
            self._observe_utilization(ex, total)
            return Charge(key, month, reserved)
        charge = Charge(key, month, 0)
        limit = self.budget_limit(ex)
        if limit is None:
            return charge
        admission = await self.counters.admit([limit])
        if not admission.allowed and await self.settle_pending(limit.key):
            admission = await self.counters.admit([limit])
        (spent,) = admission.windows
        if not admission.allowed:
            error = self.over_budget(ex, limit, spent)
            if error is not None:
                raise error
        charge.reserved = limit.cost
        self._observe_utilization(ex, spent.count)
        return charge

    def _estimate(self, ex: Exchange) -> int | None:
        body = ex.body or {}
        if ex.operation == "image-generation":
            n = body.get("n") if isinstance(body.get("n"), int) else 1
            return self.pricing.estimate_micros(
                ex.model or "", 0, 0, images=n or 1, size=_text(body, "size"),
                quality=_text(body, "quality"),
            )  # fmt: skip
        return self.pricing.estimate_micros(
            ex.model or "", prompt_tokens(ex), completion_budget(ex)
        )

    # --- after the call -------------------------------------------------------------------------

    def price(self, ex: Exchange, *, failed: bool = False) -> tuple[int | None, int]:
        """(cost in micro-dollars or None when unpriced, cost a cache hit saved)."""
        model = ex.response_model or ex.upstream_model or ex.model or ""
        usage = ex.usage
        if usage is None:  # no answer (the call failed), a hit, or nothing to go by
            known = failed or ex.cache == "HIT" or self.pricing.is_free(model)
            return (0 if known else None), 0
        body = ex.body or {}
        size, quality = _text(body, "size"), _text(body, "quality")
        cost = self.pricing.cost_micros(model, usage, size=size, quality=quality)
        if cost is None:
            self._unpriced(ex, model)
        if ex.cache == "HIT":
            return 0, cost or 0
        return cost, 0

    def _unpriced(self, ex: Exchange, model: str) -> None:
        self.telemetry.unpriced(ex, model)
        if model not in self._unpriced_warned and len(self._unpriced_warned) < 1000:
            self._unpriced_warned.add(model)
            what = (
                "has no price for this usage (an image size or quality, or output tokens it is "
                "not priced for)"
                if self.pricing.unit_prices(model) is not None
                else "has no price"
            )
            log.warning(
                "model %r %s: add it to pricing_file; its cost is recorded as unknown",
                model[:200],
                what,
            )

    async def settle(
        self,
        ex: Exchange,
        charge: Charge,
        *,
        outcome: str,
        failed: bool = False,
        estimated: bool = False,
    ) -> None:
        """Price the call, hand its usage record over, settle the reservation to the cost."""
        cost, saved = self.price(ex, failed=failed)
        if cost is not None:
            ex.cost_usd = Decimal(cost) / MICROS
        # Handed over first, before any await (a cancelled request has handed it over). It is
        # usually durable at once (written ahead); if not, its commit overlaps the budget update.
        durable = self.log.submit(self._record(ex, cost, saved, outcome, estimated))
        # The budget holds what the record holds; an unknown cost, like the report's total,
        # counts nothing (see the module docstring).
        spent = cost or 0
        budget = BudgetCounter(charge.key, ex.user, charge.month, spend=False)
        self.corrections.add(charge.key, budget, spent - charge.reserved)
        if spent:
            settled = BudgetCounter(spent_key(charge.key), ex.user, charge.month, spend=True)
            self.corrections.add(settled.key, settled, spent)
        if durable is not None:
            try:
                await durable
            except UsageNotDurable:  # database and journal both failing: it stays queued
                log.error("usage record of %s is not durable yet (kept queued)", ex.request_id)

    async def _correct(self, batch: list[tuple[BudgetCounter, int]]) -> None:
        """Apply summed corrections (concurrent adds, one pipelined write with Redis), then
        check the settled spend they bring against notify_at."""
        totals = await asyncio.gather(
            *(self.counters.add(counter.key, delta, ttl_s=MONTH_TTL_S) for counter, delta in batch)
        )
        for (counter, _), total in zip(batch, totals, strict=True):
            if counter.spend:
                await self._maybe_notify(counter, total)

    def _observe_utilization(self, ex: Exchange, total: int) -> None:
        """``sidecar.budget.utilization`` as the reservation leaves it (spent and reserved)."""
        budget = self.budget_micros(ex.user)
        if budget and total / budget >= UTILIZATION_FLOOR:
            # (the histogram is for users nearing their budget; recording is not free)
            self.telemetry.budget_utilization(ex, total / budget)

    async def _maybe_notify(self, counter: BudgetCounter, spent: int) -> None:
        """One notification per user and month once the settled spend reaches notify_at."""
        budget = self.budget_micros(counter.user)
        if not budget or spent / budget < self.settings.budgets.notify_at:
            return
        budget_key = counter.key.removesuffix(SPENT_SUFFIX)
        if budget_key in self._notified:
            return  # known to be sent (by this process or another): no round trip
        if len(self._notified) >= 10_000:
            self._notified.clear()
        self._notified.add(budget_key)
        flag = f"{budget_key}:notified"
        first, _ = await self.counters.reserve(flag, 1, limit=1, ttl_s=MONTH_TTL_S)
        if first:
            self.telemetry.alerts.notify(
                ("budget", counter.user, counter.month),
                {
                    "alert": "budget_threshold",
                    "user": counter.user,
                    "month": counter.month,
                    "utilization": round(spent / budget, 4),
                    "budget_usd": str(Decimal(budget) / MICROS),
                    "spent_usd": str(Decimal(spent) / MICROS),
                },
            )

    def _record(
        self, ex: Exchange, cost: int | None, saved: int, outcome: str, estimated: bool
    ) -> UsageRecord:
        usage = ex.usage
        return UsageRecord(
            time=datetime.now(UTC),
            request_id=ex.request_id,
            user=ex.user,
            operation=ex.operation,
            model_requested=ex.model or "",
            model_served=ex.response_model or ex.upstream_model or ex.model or "",
            provider=ex.provider_name,
            input_tokens=usage.input_tokens if usage else 0,
            cached_input_tokens=usage.cached_input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            images=usage.images if usage else 0,
            cost_micros=cost,
            cache_hit=ex.cache == "HIT",
            saved_micros=saved,
            fallback=ex.fallback,
            outcome=outcome,
            estimated=estimated,
            upstream_calls=ex.attempts,
        )


SPENT_SUFFIX = ":spent"


def spent_key(budget_key: str) -> str:
    """The counter of a month's settled spend, beside its budget counter (same hash tag)."""
    return budget_key + SPENT_SUFFIX


@dataclass(frozen=True, slots=True)
class BudgetCounter:
    """A counter a correction applies to: a budget counter (spent and reserved), or the
    month's settled spend (``spend``), checked against notify_at once applied."""

    key: str
    user: str
    month: str
    spend: bool


class Charge:
    """A call's budget counter and what is reserved on it."""

    __slots__ = ("key", "month", "reserved")

    def __init__(self, key: str, month: str, reserved: int) -> None:
        self.key, self.month, self.reserved = key, month, reserved


class _StreamEnd:
    """A stream's cost is known when it ends; its end (``[DONE]``, ``response.completed``) is
    held back until the usage record is durable, then sent."""

    def __init__(self, stage: Costs, ex: Exchange, charge: Charge) -> None:
        self.stage, self.ex, self.charge = stage, ex, charge
        self.held: list[bytes] = []
        self.deltas = 0  # content chunks relayed: about one token each

    def on_event(self, event: bytes) -> bytes | None:
        if event.startswith(_TERMINAL):
            self.held.append(event)
            return None
        if b'"delta"' in event:
            self.deltas += 1
        return event

    async def finish(self, end: StreamEnd) -> None:
        estimated = self.ex.usage is None
        if estimated:  # the stream ended before its usage chunk (the client left, or a failure)
            self.ex.usage = _estimated_usage(self.ex, self.deltas)
        if end.completed:
            outcome = "success"
        else:
            outcome = end.error.code.value if end.error else end.reason.value
        await self.stage.settle(self.ex, self.charge, outcome=outcome, estimated=estimated)

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        return self.held or NO_EVENTS


def _estimated_usage(ex: Exchange, output_tokens: int) -> Usage:
    """No usage came: the prompt's estimate, and the answer's counted tokens."""
    return Usage(input_tokens=prompt_tokens(ex), output_tokens=output_tokens)


def _answer_tokens(answer: dict[str, Any] | None) -> int:
    """About a token per 4 characters of an answer's text (its choices' ``text`` or message
    content, as the prompt is counted); 0 when it has none."""
    chars = 0
    for choice in (answer or {}).get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = choice.get("text", message.get("content") if isinstance(message, dict) else None)
        if isinstance(text, str):
            chars += len(text)
    return (chars + 3) // 4


def _usd(micros: int) -> str:
    return f"{Decimal(micros) / MICROS:f}"


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None
