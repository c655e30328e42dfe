"""Builders for unit tests of single stages (no sockets)."""

from __future__ import annotations

from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.body import BodyLimit


def exchange(
    path: str = "chat/completions",
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Exchange:
    raw = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else b"")

    async def read_body(limit: int) -> bytes:
        if len(raw) > limit:
            raise BodyLimit
        return raw

    return Exchange(
        request_id="req-test",
        method=method,
        path=path,
        query="",
        headers=CIMultiDictProxy(CIMultiDict(headers or {})),
        read_body=read_body,
    )


class Recorder:
    """A terminal ``call_next`` that records the exchange it got and answers a fixed reply."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply or Reply(200, body=b"{}")
        self.seen: list[Exchange] = []

    async def __call__(self, ex: Exchange) -> Reply:
        self.seen.append(ex)
        return self.reply
