"""The classification table: upstream failures in, SPEC error codes and decisions out.

================================  =================  =====  ========  =======================
upstream says                     code               retry  fallback  why
================================  =================  =====  ========  =======================
429 insufficient_quota            QUOTA_EXCEEDED     no     yes (*)   other providers' quota
429 "Request too large (TPM)"     RATE_LIMIT         no     yes       a retry cannot shrink it
429 (anything else)               RATE_LIMIT         yes    yes       honour the retry hints
400 context_length_exceeded       CONTEXT_LENGTH     no     no        action CLEAR_CONTEXT
400 / 422 (anything else)         INVALID_INPUT      no     no        the request is wrong
401 with the sidecar's key         MODEL_UNAVAILABLE  no     yes (*)   our key: cool down, alert
401 / 403 with the app's key      UNAUTHORIZED       no     no        forward_client_key: the
                                                                      app's key, not ours
403 with the sidecar's key        MODEL_UNAVAILABLE  no     yes       this model is not ours
                                                                      to use; others may be
404 model_not_found / 404         MODEL_UNAVAILABLE  no     yes
408 / 504, timeouts               TIMEOUT            yes    yes
409 / 500 / 502 / 503 / 5xx       MODEL_UNAVAILABLE  yes    yes
413                               PAYLOAD_TOO_LARGE  no     no
connection errors, garbage        NETWORK            yes    yes
================================  =================  =====  ========  =======================

(*) account-level: the provider account's state, not the model's. Other models of the same
provider cannot help, so the fallback chain skips them; another provider may still answer.

Only a 401 to the sidecar's own key rests the provider: a 403 is often one model refused
("model_not_allowed") while the others answer, and a key the app sent (``forward_client_key``)
is the app's to fix. Resting the provider on either would let one caller shut it for everyone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from sidecar.errors import ErrorCode, SidecarError

_KEYISH = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*]{6,}|\bBearer\s+\S+", re.IGNORECASE)


class UpstreamFailure(SidecarError):
    """A classified upstream failure, with what the resilience layer may do about it."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry: bool,
        fallback: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        param: str | None = None,
        bad_credentials: bool = False,
        account: bool = False,
        reason: str | None = None,
    ) -> None:
        super().__init__(
            code,
            message,
            retry=retry,
            retry_after_s=retry_after_s,
            param=param,
            upstream_status=status,
            reason=reason,
        )
        self.fallback = fallback
        self.bad_credentials = bad_credentials
        self.account = account or bad_credentials


def classify_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    provider: str = "upstream",
    *,
    client_key: bool = False,
) -> UpstreamFailure:
    """``client_key``: the request carried the app's own key (``forward_client_key``)."""
    error = _error_object(body)
    code = str(error.get("code") or error.get("type") or "")
    message = scrub(str(error.get("message") or f"{provider} answered HTTP {status}"))
    param = error.get("param") if isinstance(error.get("param"), str) else None
    hint = retry_after_s(headers)

    def fail(code_: ErrorCode, *, retry: bool, fallback: bool, **kw: Any) -> UpstreamFailure:
        return UpstreamFailure(
            code_, message, retry=retry, fallback=fallback, status=status, param=param, **kw
        )

    if status == 429:
        if code == "insufficient_quota":
            return fail(ErrorCode.QUOTA_EXCEEDED, retry=False, fallback=True, account=True)
        if "request too large" in message.lower():
            return fail(ErrorCode.RATE_LIMIT, retry=False, fallback=True)
        return fail(ErrorCode.RATE_LIMIT, retry=True, fallback=True, retry_after_s=hint)
    if status in (400, 422):
        if code == "context_length_exceeded" or "maximum context length" in message:
            return fail(ErrorCode.CONTEXT_LENGTH, retry=False, fallback=False)
        return fail(ErrorCode.INVALID_INPUT, retry=False, fallback=False)
    if status in (401, 403) and client_key:
        message = f"{provider} refused the API key the app sent (HTTP {status}): {message}"
        return fail(ErrorCode.UNAUTHORIZED, retry=False, fallback=False)
    if status == 401:
        message = f"{provider} rejected the sidecar's credentials (HTTP 401); check api_key_env."
        return fail(ErrorCode.MODEL_UNAVAILABLE, retry=False, fallback=True, bad_credentials=True)
    if status == 403:
        message = f"{provider} refused this request (HTTP 403): {message}"
        return fail(ErrorCode.MODEL_UNAVAILABLE, retry=False, fallback=True)
    if status == 404:
        return fail(ErrorCode.MODEL_UNAVAILABLE, retry=False, fallback=True)
    if status == 413:
        return fail(ErrorCode.PAYLOAD_TOO_LARGE, retry=False, fallback=False)
    if status in (408, 504):
        return fail(ErrorCode.TIMEOUT, retry=True, fallback=True, retry_after_s=hint)
    if status == 409 or status >= 500:
        return fail(ErrorCode.MODEL_UNAVAILABLE, retry=True, fallback=True, retry_after_s=hint)
    return fail(ErrorCode.INVALID_INPUT, retry=False, fallback=False)


# Raised by our own code during an attempt (a body that cannot be sent, say): the request is at
# fault, so another attempt or model cannot help and no breaker should count it.
_CLIENT_CODES = frozenset(
    {ErrorCode.INVALID_INPUT, ErrorCode.CONTEXT_LENGTH, ErrorCode.PAYLOAD_TOO_LARGE}
)


def classify_exception(err: SidecarError) -> UpstreamFailure:
    """Transport failures (already SidecarErrors) are retryable and may fall back; a client
    mistake found during an attempt is neither."""
    if isinstance(err, UpstreamFailure):
        return err
    if err.code in _CLIENT_CODES:
        return UpstreamFailure(
            err.code, err.message, retry=False, fallback=False, param=err.param, reason=err.reason
        )
    return UpstreamFailure(err.code, err.message, retry=err.retry, fallback=True)


def garbage(provider: str, detail: str) -> UpstreamFailure:
    return UpstreamFailure(
        ErrorCode.NETWORK,
        f"{provider} sent a response that is not valid JSON ({detail}).",
        retry=True,
        fallback=True,
    )


def scrub(text: str) -> str:
    """Remove anything that looks like a credential from upstream text before we repeat it."""
    return _KEYISH.sub("[redacted]", text)


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            return error
        if isinstance(error, str):
            return {"message": error}
    return {}


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The upstream's retry hint in seconds: retry-after-ms, Retry-After, x-ratelimit-reset-*."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    resets = [
        _duration_s(headers[name])
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if name in headers
    ]
    known = [reset for reset in resets if reset is not None]
    return max(known) if known else None


def _duration_s(text: str) -> float | None:
    """OpenAI's reset durations: "20ms", "1s", "6m0s", "1h2m3.5s"."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)
