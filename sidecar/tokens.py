"""Rough token counts of a request, before the model has said: what limits and budgets reserve.

The prompt is measured once per request (about 4 characters a token of its JSON text) and kept
on the exchange; the rate limiter and the budget both read it.
"""

from __future__ import annotations

from sidecar.exchange import Exchange

DEFAULT_MAX_TOKENS = 1024  # completion budget assumed when a request names none
_PROMPT_FIELDS = ("messages", "input", "prompt")
_BUDGET_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def prompt_tokens(ex: Exchange) -> int:
    """The prompt's estimated size in tokens (computed once per exchange)."""
    if ex.prompt_estimate is None:
        body = ex.body or {}
        prompt = next((body[name] for name in _PROMPT_FIELDS if name in body), "")
        ex.prompt_estimate = len(str(prompt)) // 4 + 1
    return ex.prompt_estimate


def completion_budget(ex: Exchange) -> int:
    """The most output the request allows: its own max tokens, else DEFAULT_MAX_TOKENS."""
    body = ex.body or {}
    for name in _BUDGET_FIELDS:
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_MAX_TOKENS


def estimate_tokens(ex: Exchange) -> int:
    """Prompt plus the completion budget: the most a request can use."""
    return prompt_tokens(ex) + completion_budget(ex)
