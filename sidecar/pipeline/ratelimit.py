"""Rate limits: requests per user x operation, and tokens per user x model.

The rules, as the configuration gives them (``operations.OP.rate_limit``)::

    limit      key (one hash tag per user: one Redis slot)   algorithm       cost
    requests   rl:{user}:req:OP                              sliding log     1 per request
    tokens     rl:{user}:tok:MODEL                           GCRA            prompt estimate +
                                                                             max_tokens, settled
                                                                             to the real usage

"30 per minute" means no rolling 60 s ever holds more than 30 admitted requests, across every
instance sharing the Redis: one Lua script checks and records both limits atomically, on the
Redis server's clock. Rejections answer 429 ``RATE_LIMIT`` with ``Retry-After``; every answer of
a limited operation carries ``X-RateLimit-Limit``/``-Remaining``/``-Reset``.

Cache hits count toward the request limit (the limit caps how often a user may call, whatever
the answer costs, and its check shares one round trip with the cache lookup) but not toward
the token limit: a hit spends no tokens, so its reservation is given back.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sidecar.backends import Counters, Limit, Tally, Window
from sidecar.background import Coalescer
from sidecar.config import RateLimit as RateLimitRule
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.base import Next
from sidecar.pipeline.identity import bounded_user
from sidecar.runtime import Runtime
from sidecar.stream import NO_EVENTS, StreamEnd
from sidecar.telemetry.recorder import Telemetry
from sidecar.tokens import estimate_tokens

_SAFE_USER = re.compile(r"[A-Za-z0-9._@:-]{1,64}")  # no braces: they delimit the hash tag
SETTLE_EVERY_S = 0.05  # token corrections are applied in batches this often


def user_tag(user: str) -> str:
    """The user as it appears in keys (the hash tag): itself when short and plain, else a hash."""
    if _SAFE_USER.fullmatch(user):
        return user
    return "h-" + hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def tally_key(prefix: str, user: str) -> str:
    return f"{prefix}{{{user}}}:tally"


def request_limit(prefix: str, user: str, operation: str, rule: RateLimitRule) -> Limit:
    return Limit(f"{prefix}{{{user}}}:req:{operation}", rule.requests, rule.per_s)


def token_limit(prefix: str, user: str, model: str, rule: RateLimitRule, cost: int) -> Limit | None:
    if rule.tokens is None:
        return None
    key = f"{prefix}{{{user}}}:tok:{model}"
    return Limit(key, rule.tokens, rule.per_s, cost=min(cost, rule.tokens), kind="gcra")


def rate_headers(window: Window) -> dict[str, str]:
    reset = datetime.now(UTC) + timedelta(seconds=window.reset_s)
    return {
        "X-RateLimit-Limit": str(window.limit),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": reset.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


async def _nothing_pending(key: str) -> bool:
    return False


class RateLimitStage:
    """``lookahead`` names a key to read in the same Redis round trip (the cache's key);
    ``budget`` is the request's budget reservation, checked and recorded in that round trip too
    (all limits or none), or None; ``over_budget`` is the error when only the budget refused;
    ``settle_budget`` applies corrections of a budget counter still pending in this instance
    (True when there were: the decision is then taken once more, see :mod:`.costs`)."""

    def __init__(
        self,
        rt: Runtime,
        lookahead: Callable[[Exchange], str | None],
        budget: Callable[[Exchange], Limit | None] = lambda ex: None,
        over_budget: Callable[[Exchange, Limit, Window], SidecarError | None] = (
            lambda ex, limit, window: None
        ),
        settle_budget: Callable[[str], Awaitable[bool]] = _nothing_pending,
    ) -> None:
        self.counters: Counters = rt.backends.counters
        self.prefix = rt.settings.backends.redis_prefix + "rl:"
        self.telemetry: Telemetry = rt.telemetry
        self.lookahead = lookahead
        self.budget, self.over_budget = budget, over_budget
        self.settle_budget = settle_budget
        # Token corrections are summed per key and applied together every SETTLE_EVERY_S in
        # one background job, so a busy user's many replies cost one update, not one each.
        self.corrections = Coalescer(
            rt.background, "ratelimit.settle", self.counters.settle, SETTLE_EVERY_S
        )

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        rule = ex.op.rate_limit
        if rule is None:
            return await call_next(ex)
        user = user_tag(ex.user)
        limits = [request_limit(self.prefix, user, ex.operation, rule)]
        tokens = None
        if ex.model is not None:
            tokens = token_limit(self.prefix, user, ex.model, rule, estimate_tokens(ex))
            if tokens is not None:
                limits.append(tokens)
        budget = self.budget(ex)
        if budget is not None:
            limits.append(budget)
        cache_key = self.lookahead(ex)
        admission = await self.counters.admit(
            limits,
            Tally(tally_key(self.prefix, user), ex.operation),
            (cache_key,) if cache_key else (),
        )
        ex.prefetched.update(admission.fetched)
        if (
            not admission.allowed
            and admission.windows[0].allowed  # the requests window admits: tokens or budget
            and await self._settle_pending(tokens, budget)
        ):  # they still counted this user's answered calls at their reservations
            admission = await self.counters.admit(limits)  # (no tally: counted already)
        headers = rate_headers(admission.windows[0])
        if rule.fail_closed and self.counters.degraded:
            ex.limited_by = "unavailable"
            raise _limiter_down(ex, headers)
        windows = admission.windows
        if budget is not None:
            *windows, spent = windows
            if admission.allowed:
                ex.budget_reserved = (budget.key, budget.cost, spent.count)
            elif all(window.allowed for window in windows):  # only the budget refused
                error = self.over_budget(ex, budget, spent)
                if error is not None:
                    raise error
        if not admission.allowed:
            raise self._rejection(ex, rule, windows, headers)
        try:
            reply = await call_next(ex)
        except BaseException:
            if tokens is not None:
                self._settle(tokens, 0)  # the call failed: it spent no tokens
            raise
        reply.headers.update(headers)
        if tokens is not None:
            if reply.stream is None:
                self._settle(tokens, _used(ex))
            else:
                reply.observers.append(_SettleTokens(self, tokens, ex))
        return reply

    def _rejection(
        self, ex: Exchange, rule: RateLimitRule, windows: Sequence[Window], headers: dict[str, str]
    ) -> SidecarError:
        refused = [w for w in windows if not w.allowed]
        retry_after = max(w.reset_s for w in refused)
        which = "requests" if not windows[0].allowed else "tokens"
        if which == "tokens":  # the headers describe the window that refused
            headers = {**headers, **rate_headers(refused[0])}
        ex.limited_by = which
        limit = rule.requests if which == "requests" else rule.tokens
        self.telemetry.rate_limited(ex, limit=limit or 0, retry_after_s=retry_after, kind=which)
        return SidecarError(
            ErrorCode.RATE_LIMIT,
            f"Rate limit exceeded for {ex.operation}: {limit} {which} per {rule.per_s:g} s "
            f"per user. Retry in {math.ceil(retry_after)} s.",
            retry_after_s=max(retry_after, 0.001),
            reason=f"{which}_per_window",
            headers=headers,
        )

    async def _settle_pending(self, tokens: Limit | None, budget: Limit | None) -> bool:
        """Apply the corrections this instance still holds for the token or budget counter;
        whether there were any, so the refused decision is worth taking once more. A client
        that waits for each answer is then never refused by its own answered calls, whose
        reservations (max_tokens, the worst-case cost) are corrected in batches after them.
        Only the refusal path pays this; the admitted path makes its one round trip."""
        settled = False
        if tokens is not None and self.corrections.pending(tokens.key):
            await self.corrections.flush()
            settled = True
        if budget is not None and await self.settle_budget(budget.key):
            settled = True
        return settled

    def _settle(self, tokens: Limit, used: int) -> None:
        """Move the reservation to what was used, after the reply (never on its path)."""
        self.corrections.add(tokens.key, tokens, used - tokens.cost)


def _limiter_down(ex: Exchange, headers: dict[str, str]) -> SidecarError:
    return SidecarError(
        ErrorCode.RATE_LIMIT,
        f"The shared rate limiter (Redis) is unreachable and {ex.operation} is configured to "
        "refuse rather than limit per instance (rate_limit.fail_closed). Retry shortly.",
        retry_after_s=5,
        reason="limiter_unavailable",
        headers=headers,
    )


def _used(ex: Exchange) -> int:
    if ex.cache == "HIT" or ex.usage is None:
        return 0 if ex.cache == "HIT" or ex.error_code else estimate_tokens(ex)
    return ex.usage.input_tokens + ex.usage.output_tokens


class _SettleTokens:
    """A stream's tokens are known when it ends (the usage chunk)."""

    def __init__(self, stage: RateLimitStage, tokens: Limit, ex: Exchange) -> None:
        self.stage, self.tokens, self.ex = stage, tokens, ex

    def on_event(self, event: bytes) -> bytes | None:
        return event

    def on_end(self, end: StreamEnd) -> Sequence[bytes]:
        self.stage._settle(self.tokens, _used(self.ex))
        return NO_EVENTS


async def user_status(rt: Runtime, user: str) -> dict[str, dict[str, Any]]:
    """``GET /sidecar/ratelimit/{user}``: per limited operation, requests and rejections over
    the last day, and the request window as it stands (nothing is recorded)."""
    tag = user_tag(bounded_user(user))
    prefix = rt.settings.backends.redis_prefix + "rl:"
    counters = rt.backends.counters
    tallies = await counters.tallies(tally_key(prefix, tag))
    limited = {name: op.rate_limit for name, op in rt.settings.operations.items() if op.rate_limit}
    windows = (
        await counters.peek(
            [request_limit(prefix, tag, name, rule) for name, rule in limited.items()]
        )
        if limited
        else []
    )
    status: dict[str, dict[str, Any]] = {}
    for (name, _rule), window in zip(limited.items(), windows, strict=True):
        headers = rate_headers(window)
        status[name] = {
            "requests": tallies.get(f"{name}:requests", 0),
            "limited": tallies.get(f"{name}:limited", 0),
            "limit": window.limit,
            "remaining": window.remaining,
            "reset": headers["X-RateLimit-Reset"],
        }
    return status
