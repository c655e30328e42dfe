"""Who is asking, for what, and how urgently (SPEC "Request identity")."""

from __future__ import annotations

from sidecar.config import PRIORITIES, Priority, Settings
from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.openai_api import MODEL_ENDPOINTS, operation_for_path
from sidecar.pipeline.base import Next


class Identify:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        body = ex.body or {}
        ex.user = _user(ex, body)
        ex.operation = self._operation(ex)
        ex.op = self.settings.operation(ex.operation)
        ex.priority = _priority(ex, ex.op.priority)
        if ex.path in MODEL_ENDPOINTS and ex.method == "POST":
            _check_model_request(ex, body)
        return await call_next(ex)

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
        return header
    for key in ("user", "safety_identifier"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return "anonymous"


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
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            f"POST /v1/{ex.path} needs a JSON object body with a 'model'.",
            reason="missing_body",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise SidecarError(
            ErrorCode.INVALID_INPUT,
            "'model' is required and must be a non-empty string.",
            reason="missing_model",
            param="model",
        )
    ex.model = ex.upstream_model = model
    ex.stream = body.get("stream") is True
    options = body.get("stream_options")
    ex.client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
