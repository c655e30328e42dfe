"""Who is asking, for what, and how urgently (SPEC "Request identity")."""

from __future__ import annotations

import hashlib
import re
from typing import Final

from sidecar.config import PRIORITIES, Priority, Settings
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import MAX_ENCODABLE_DEPTH, Exchange, Reply, encode_body
from sidecar.openai_api import DEFAULT_MODERATION_MODEL, MODEL_ENDPOINTS, operation_for_path
from sidecar.pipeline.base import Next
from sidecar.pipeline.body import is_json

# SPEC: a model name is at most this long and has no control characters. It becomes a response
# header, a breaker and a metric key: bounded, and sendable as a header.
MAX_MODEL_CHARS: Final = 256
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_valid_model(model: str) -> bool:
    return len(model) <= MAX_MODEL_CHARS and _CONTROL_CHARS.search(model) is None


class Identify:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        body = ex.body or {}
        ex.user = _user(ex, body)
        ex.operation = self._operation(ex)
        ex.op = self.settings.operation(ex.operation)
        ex.priority = _priority(ex, ex.op.priority)
        self._check_provider(ex)
        if ex.path in MODEL_ENDPOINTS and ex.method == "POST":
            _check_model_request(ex, body)
        return await call_next(ex)

    def _check_provider(self, ex: Exchange) -> None:
        """An unknown X-Sidecar-Provider is refused here, with the other request headers, before
        it could use a rate-limit slot, a reservation or a usage record (routing reads it)."""
        named = ex.headers.get("X-Sidecar-Provider")
        if named is not None and named not in self.settings.providers:
            known = ", ".join(self.settings.providers)
            raise SidecarError(
                ErrorCode.INVALID_INPUT,
                f"Unknown provider {named!r} in X-Sidecar-Provider; configured: {known}.",
                reason="unknown_provider",
                param="X-Sidecar-Provider",
            )

    def _operation(self, ex: Exchange) -> str:
        named = ex.headers.get("X-Sidecar-Operation")
        if named is None:
            return operation_for_path(ex.path)
        if named not in self.settings.operations:
            known = ", ".join(sorted(self.settings.operations))
            raise SidecarError(
                ErrorCode.INVALID_INPUT,
                f"Unknown X-Sidecar-Operation {named!r}; configured operations: {known}.",
                reason="unknown_operation",
            )
        return named


def _user(ex: Exchange, body: dict[str, object]) -> str:
    header = ex.headers.get("X-Sidecar-User")
    if header:
        return bounded_user(header)
    for key in ("user", "safety_identifier"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return bounded_user(value)
    return "anonymous"


# A user id is whatever the app sends; it becomes a span attribute, usage rows and Redis keys.
_PLAIN_USER = re.compile(r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,128}")  # no control chars


def bounded_user(user: str) -> str:
    """The user as sent when at most 128 characters without control characters (or undecodable
    bytes); otherwise a stable hash of it (``h-...``), so long or odd ids stay bounded and the
    same id still counts as one user."""
    if _PLAIN_USER.fullmatch(user):
        return user
    digest = hashlib.sha256(user.encode("utf-8", "surrogateescape")).hexdigest()
    return "h-" + digest[:32]


def _priority(ex: Exchange, default: Priority) -> Priority:
    value = ex.headers.get("X-Sidecar-Priority", default).lower()
    for priority in PRIORITIES:
        if value == priority:
            return priority
    raise SidecarError(
        ErrorCode.INVALID_INPUT,
        f"X-Sidecar-Priority must be one of high, normal, batch (got {value!r}).",
        reason="bad_priority",
    )


def _check_model_request(ex: Exchange, body: dict[str, object]) -> None:
    if ex.body is None:
        raise _no_json_body(ex)
    model = body.get("model")
    if model is None and ex.path == "moderations":  # optional there: the API picks one
        model = DEFAULT_MODERATION_MODEL
    if not isinstance(model, str) or not model:
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            "'model' is required and must be a non-empty string.",
            reason="missing_model",
            param="model",
        )
    if not is_valid_model(model):
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"'model' must be at most {MAX_MODEL_CHARS} characters with no control characters.",
            reason="bad_model",
            param="model",
        )
    ex.model = ex.upstream_model = model
    ex.stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"'stream_options' must be an object or null, not {_json_type(options)}.",
            reason="bad_stream_options",
            param="stream_options",
        )
    ex.client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    _check_encodable(ex.raw_body, body)


def _check_encodable(raw: bytes, body: dict[str, object]) -> None:
    """Refuse now a body the sidecar could not re-encode later (stream usage options, fallback
    models rewrite model calls), rather than fail mid-way after an upstream attempt.

    Encoding it once is the exact test and the cheapest one measured (a few µs for a typical
    body, a fraction of parsing it); a body too short to nest that deep skips it.
    """
    if len(raw) > 2 * MAX_ENCODABLE_DEPTH:
        encode_body(body)


def _no_json_body(ex: Exchange) -> SidecarError:
    content_type = ex.headers.get("Content-Type")
    if content_type is not None and not is_json(content_type):
        shown = content_type[:100].encode("utf-8", "backslashreplace").decode()
        return SidecarError(
            ErrorCode.INVALID_INPUT,
            f"POST /v1/{ex.path} needs a JSON object body, but the request's Content-Type is "
            f"{shown!r}; send the JSON object with 'Content-Type: application/json'.",
            reason="unsupported_content_type",
        )
    return SidecarError(
        ErrorCode.INVALID_INPUT,
        f"POST /v1/{ex.path} needs a JSON object body with a 'model'.",
        reason="missing_body",
    )


# A parsed JSON value's type in JSON's words (objects and null are never reported).
_JSON_TYPES: Final = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "an array")
