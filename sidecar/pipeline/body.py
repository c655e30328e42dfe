"""Reads the request body within the size limit and parses JSON bodies."""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.base import Next


class BodyLimit(Exception):
    """Raised by an exchange's ``read_body`` when the body is larger than allowed."""


class BodyUnreadable(Exception):
    """Raised by an exchange's ``read_body`` when the body cannot be read as it was sent (it
    does not decode as its ``Content-Encoding`` says, or it is cut short); the message says how."""


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
        except BodyUnreadable as exc:
            raise SidecarError(
                ErrorCode.INVALID_INPUT,
                f"Request body could not be read: {exc}. Send it uncompressed, or compressed "
                "as its Content-Encoding header says.",
                reason="unreadable_body",
            ) from None
        if ex.raw_body and is_json(ex.headers.get("Content-Type")):
            ex.body = parse_object(ex.raw_body)
        return await call_next(ex)


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON; a body without one is taken as JSON (as OpenAI does)."""
    if content_type is None or content_type.startswith("application/json"):
        return True  # the SDKs' own spelling: no parsing on the common path
    media_type = content_type.partition(";")[0].strip().lower()  # media types ignore case
    return media_type == "application/json" or media_type.endswith("+json")


def parse_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or 400 ``INVALID_INPUT`` (``malformed_json``)."""
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
