"""The stage contract.

A stage is ``async (exchange, call_next) -> Reply``. It may answer by itself (a cache hit, a
rate-limited or blocked request) or call the next stage and look at, or wrap, its reply. Stages
run in the order of the list in :mod:`sidecar.pipeline`; the last one calls the upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from sidecar.exchange import Exchange, Reply

Next = Callable[[Exchange], Awaitable[Reply]]


class Stage(Protocol):
    async def __call__(self, ex: Exchange, call_next: Next) -> Reply: ...


def compose(stages: Sequence[Stage], terminal: Next) -> Next:
    """Chain the stages so the first in the list is the outermost."""
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, call_next=handler)
    return handler
