"""Every error the sidecar answers with, in one place.

The taxonomy (SPEC "Errors"); each code has one HTTP status, one OpenAI error ``type`` and one
user-facing message, so the official SDKs raise their usual exception classes::

    SidecarError                      code               status  retry
    ├── rate limits and money         RATE_LIMIT         429     yes (Retry-After)
    │                                 QUOTA_EXCEEDED     429     no
    ├── the caller's request          INVALID_INPUT      400     no
    │                                 CONTEXT_LENGTH     400     no  (action CLEAR_CONTEXT)
    │                                 PAYLOAD_TOO_LARGE  413     no
    │                                 UNAUTHORIZED       401     no
    ├── the model side                NETWORK            502     yes
    │                                 MODEL_UNAVAILABLE  503     yes
    │                                 TIMEOUT            504     yes
    └── our own bug                   INTERNAL           500     yes

Upstream error responses are classified into these codes by :mod:`sidecar.upstream.classify`.
Non-retryable errors carry ``x-should-retry: false`` so client SDKs do not multiply attempts; so
does any model-call failure after the sidecar's own retries and fallbacks (``sdk_retry``).
A stage may add headers of its own to an error (the rate limiter's ``X-RateLimit-*``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson


class ErrorCode(StrEnum):
    RATE_LIMIT = "RATE_LIMIT"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    INVALID_INPUT = "INVALID_INPUT"
    CONTEXT_LENGTH = "CONTEXT_LENGTH"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNAUTHORIZED = "UNAUTHORIZED"
    NETWORK = "NETWORK"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class ErrorKind:
    status: int
    type: str
    retry: bool
    user_message: str
    action: str | None = None


KINDS: dict[ErrorCode, ErrorKind] = {
    ErrorCode.RATE_LIMIT: ErrorKind(
        429, "rate_limit_error", True, "I'm processing too many requests. Please wait a moment."
    ),
    ErrorCode.QUOTA_EXCEEDED: ErrorKind(
        429, "insufficient_quota", False, "The usage limit for this account has been reached."
    ),
    ErrorCode.INVALID_INPUT: ErrorKind(
        400, "invalid_request_error", False, "I couldn't process that request. Please rephrase it."
    ),
    ErrorCode.CONTEXT_LENGTH: ErrorKind(
        400,
        "invalid_request_error",
        False,
        "This conversation is too long for me. Please start a new one.",
        action="CLEAR_CONTEXT",
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorKind(
        413, "invalid_request_error", False, "That request is too large. Please send less at once."
    ),
    ErrorCode.UNAUTHORIZED: ErrorKind(
        401, "authentication_error", False, "You are not authorized to do that."
    ),
    ErrorCode.NETWORK: ErrorKind(
        502, "api_error", True, "I couldn't reach the model service. Please try again."
    ),
    ErrorCode.MODEL_UNAVAILABLE: ErrorKind(
        503, "api_error", True, "The model is temporarily unavailable. Please try again shortly."
    ),
    ErrorCode.TIMEOUT: ErrorKind(
        504, "timeout_error", True, "The model took too long to answer. Please try again."
    ),
    ErrorCode.INTERNAL: ErrorKind(
        500, "api_error", True, "Something went wrong on our side. Please try again."
    ),
}


class SidecarError(Exception):
    """An error answered to the client with the OpenAI error envelope."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        reason: str | None = None,
        retry_after_s: float | None = None,
        retry: bool | None = None,
        param: str | None = None,
        upstream_status: int | None = None,
        headers: Mapping[str, str] | None = None,
        sdk_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.kind = KINDS[code]
        self.message = message
        self.reason = reason
        self.retry_after_s = retry_after_s
        # An upstream may tell us more than the code's default (e.g. a 503 it says not to retry).
        self.retry = self.kind.retry if retry is None else retry
        self.param = param
        self.upstream_status = upstream_status
        self.extra_headers = dict(headers) if headers else {}
        # Whether a client SDK should retry on its own (x-should-retry). False once the sidecar
        # has applied its own retry policy, so SDK retries do not multiply ours.
        self.sdk_retry = self.retry if sdk_retry is None else sdk_retry

    @property
    def status(self) -> int:
        return self.kind.status

    def envelope(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.kind.type,
            "code": self.code.value,
            "param": self.param,
            "user_message": self.kind.user_message,
            "retry": self.retry,
            "retry_after_s": self._retry_after_whole_s(),
            "action": self.kind.action,
            "request_id": request_id,
        }
        if self.reason is not None:
            error["reason"] = self.reason
        return {"error": error}

    def headers(self) -> dict[str, str]:
        headers = {**self.extra_headers, "Content-Type": "application/json"}
        if not self.retry or not self.sdk_retry:
            headers["x-should-retry"] = "false"
        retry_after = self._retry_after_whole_s()
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return headers

    def body(self, request_id: str) -> bytes:
        return orjson.dumps(self.envelope(request_id))

    def _retry_after_whole_s(self) -> int | None:
        if self.retry_after_s is None or not self.retry:
            return None
        return max(1, math.ceil(self.retry_after_s))

    def __repr__(self) -> str:
        return f"SidecarError({self.code.value}, {self.message!r})"
