"""Reads the request body within the size limit and parses JSON bodies."""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.base import Next


class BodyLimit(Exception):
    """Raised by an exchange's ``read_body`` when the body is larger than allowed."""


class ReadBody:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        try:
            ex.raw_body = await ex.read_body(self.max_bytes)
        except BodyLimit:
            raise SidecarError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"Request body exceeds the sidecar's limit of {self.max_bytes} bytes "
                "(limits.max_body_bytes).",
            ) from None
        if ex.raw_body and _is_json(ex):
            ex.body = _parse_object(ex.raw_body)
        return await call_next(ex)


def _is_json(ex: Exchange) -> bool:
    content_type = ex.headers.get("Content-Type", "application/json")
    return content_type.startswith("application/json") or content_type.endswith("+json")


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"Request body is not valid JSON: {exc}. Send a JSON object.",
            reason="malformed_json",
        ) from None
    if not isinstance(parsed, dict):
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"Request body must be a JSON object, not {type(parsed).__name__}.",
            reason="malformed_json",
        )
    return parsed
