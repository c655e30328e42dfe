"""Costs: every model call priced, kept within its user's monthly budget, and recorded durably.

Before the call the estimated cost (prompt estimate + ``max_tokens``, or the images asked for,
at the model's prices) is reserved against the user's budget for the calendar month (UTC), in
one atomic step, so concurrent requests cannot overshoot it: a reservation that does not fit
is refused with 429 ``QUOTA_EXCEEDED`` when ``budgets.enforce``. When the operation has a rate
limit, the reservation is one more limit (``kind="sum"``) in the rate limiter's decision: one
Redis round trip for both, all or nothing. A reservation that takes the month's total (spent
and reserved) past ``budgets.notify_at`` sends one notification per user per month.

After the call the usage record is made durable before the reply goes on (see
:mod:`sidecar.usage_log`: a client never holds an answer whose record a crash could lose), and
the reservation is corrected to the real cost after the reply, summed per user and applied in
batches (:class:`sidecar.background.Coalescer`): until then the budget counts the reservation,
which is never less than the cost.

A cache hit costs 0 and records the cost it saved. A model missing from the price table is an
alarm (``sidecar.cost.unpriced``, one warning per model) and its cost is recorded as unknown,
never as $0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
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
        # A reservation is corrected to the real cost after the reply, in batches.
        self.corrections = Coalescer(rt.background, "budget.settle", self._correct, SETTLE_EVERY_S)

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        if ex.model is None or not is_model_call(ex.method, ex.path):
            return await call_next(ex)
        charge = await self.reserve(ex)
        try:
            reply = await call_next(ex)
        except BaseException:
            await self.settle(ex, charge, outcome=ex.error_code or "error")
            raise
        if reply.stream is None:
            outcome = "success" if reply.status < 400 else f"HTTP_{reply.status}"
            await self.settle(ex, charge, outcome=outcome)
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
        return SidecarError(
            ErrorCode.QUOTA_EXCEEDED,
            f"Monthly budget of ${Decimal(budget) / MICROS:f} for this user is used up "
            f"(${Decimal(total) / MICROS:f} spent or reserved in {self.keys.month}); this "
            f"request would cost up to ${Decimal(estimate) / MICROS:f}.",
            reason="budget_exceeded",
        )

    async def reserve(self, ex: Exchange) -> Charge:
        """Reserve the call's estimated cost against the user's budget for this month (done
        already when the rate limit's round trip carried it)."""
        key, month = self.keys.current(ex.user)
        if ex.budget_reserved is not None:
            key, reserved, total = ex.budget_reserved
            charge = Charge(key, month, reserved)
            await self._maybe_notify(ex, charge, total)
            return charge
        charge = Charge(key, month, 0)
        limit = self.budget_limit(ex)
        if limit is None:
            return charge
        admission = await self.counters.admit([limit])
        (spent,) = admission.windows
        if not admission.allowed:
            error = self.over_budget(ex, limit, spent)
            if error is not None:
                raise error
        charge.reserved = limit.cost
        await self._maybe_notify(ex, charge, spent.count)
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

    def price(self, ex: Exchange) -> tuple[int | None, int]:
        """(cost in micro-dollars or None when unpriced, cost a cache hit saved)."""
        model = ex.response_model or ex.upstream_model or ex.model or ""
        usage = ex.usage
        if usage is None:
            known = ex.cache == "HIT" or ex.error_code or self.pricing.is_free(model)
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
        self, ex: Exchange, charge: Charge, *, outcome: str, estimated: bool = False
    ) -> None:
        """Price the call, hand its usage record over, settle the reservation to the cost."""
        cost, saved = self.price(ex)
        if cost is not None:
            ex.cost_usd = Decimal(cost) / MICROS
        # Handed over first, before any await (a cancelled request has handed it over). It is
        # usually durable at once (written ahead); if not, its commit overlaps the budget update.
        durable = self.log.submit(self._record(ex, cost, saved, outcome, estimated))
        spent = cost if cost is not None else charge.reserved  # unknown: keep the reserve
        self.corrections.add(charge.key, charge.key, spent - charge.reserved)
        if durable is not None:
            try:
                await durable
            except UsageNotDurable:  # database and journal both failing: it stays queued
                log.error("usage record of %s is not durable yet (kept queued)", ex.request_id)

    async def _correct(self, batch: list[tuple[str, int]]) -> None:
        """Apply summed corrections: concurrent adds, one pipelined write with Redis."""
        await asyncio.gather(
            *(self.counters.add(key, delta, ttl_s=MONTH_TTL_S) for key, delta in batch)
        )

    async def _maybe_notify(self, ex: Exchange, charge: Charge, total: int) -> None:
        budget = self.budget_micros(ex.user)
        if not budget:
            return
        utilization = total / budget
        if utilization < UTILIZATION_FLOOR:
            return  # the histogram is for users nearing their budget; recording is not free
        self.telemetry.budget_utilization(ex, utilization)
        if utilization < self.settings.budgets.notify_at:
            return
        if charge.key in self._notified:
            return  # known to be sent (by this process or another): no round trip
        if len(self._notified) >= 10_000:
            self._notified.clear()
        self._notified.add(charge.key)
        flag = f"{charge.key}:notified"
        first, _ = await self.counters.reserve(flag, 1, limit=1, ttl_s=MONTH_TTL_S)
        if first:
            self.telemetry.budget_notice(ex, utilization)
            self.telemetry.alerts.notify(
                ("budget", ex.user, charge.month),
                {
                    "alert": "budget_threshold",
                    "user": ex.user,
                    "month": charge.month,
                    "utilization": round(utilization, 4),
                    "budget_usd": str(Decimal(budget) / MICROS),
                    "spent_usd": str(Decimal(total) / MICROS),
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


def _estimated_usage(ex: Exchange, output_chunks: int) -> Usage:
    """No usage chunk came: the prompt's estimate, and about a token per relayed chunk."""
    return Usage(input_tokens=prompt_tokens(ex), output_tokens=output_chunks)


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None
