"""The classification table: upstream status and code in, SPEC code and decisions out."""

from __future__ import annotations

import orjson
import pytest

from sidecar.errors import ErrorCode, SidecarError
from sidecar.upstream.classify import classify_exception, classify_response, retry_after_s, scrub


def body(code: str | None, message: str = "x", type_: str = "error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "code": code}})


@pytest.mark.parametrize(
    ("status", "payload", "code", "retry", "fallback"),
    [
        (429, body("rate_limit_exceeded"), ErrorCode.RATE_LIMIT, True, True),
        (429, body("insufficient_quota"), ErrorCode.QUOTA_EXCEEDED, False, True),
        (
            429,
            body("rate_limit_exceeded", "Request too large for gpt-4o on tokens per min (TPM)"),
            ErrorCode.RATE_LIMIT,
            False,
            True,
        ),
        (400, body("context_length_exceeded"), ErrorCode.CONTEXT_LENGTH, False, False),
        (400, body("invalid_value"), ErrorCode.INVALID_INPUT, False, False),
        (401, body("invalid_api_key"), ErrorCode.MODEL_UNAVAILABLE, False, True),
        (403, body(None), ErrorCode.MODEL_UNAVAILABLE, False, True),
        (404, body("model_not_found"), ErrorCode.MODEL_UNAVAILABLE, False, True),
        (408, b"", ErrorCode.TIMEOUT, True, True),
        (409, b"", ErrorCode.MODEL_UNAVAILABLE, True, True),
        (500, b"<html>oops</html>", ErrorCode.MODEL_UNAVAILABLE, True, True),
        (503, body(None), ErrorCode.MODEL_UNAVAILABLE, True, True),
        (504, b"", ErrorCode.TIMEOUT, True, True),
        (413, b"", ErrorCode.PAYLOAD_TOO_LARGE, False, False),
    ],
)
def test_classification_table(
    status: int, payload: bytes, code: ErrorCode, retry: bool, fallback: bool
) -> None:
    """Each row of the table decides code, retry and fallback."""
    failure = classify_response(status, payload, {})
    assert (failure.code, failure.retry, failure.fallback) == (code, retry, fallback)
    assert failure.upstream_status == status


@pytest.mark.parametrize("status", [401, 403])
def test_the_apps_own_key_refused_is_unauthorized_and_rests_nothing(status: int) -> None:
    """forward_client_key: the app's key was refused, so the app hears 401 and the provider
    is not rested (resting it would let one app shut the provider for all)."""
    failure = classify_response(status, body("invalid_api_key"), {}, "byok", client_key=True)
    assert (failure.code, failure.status, failure.fallback) == (ErrorCode.UNAUTHORIZED, 401, False)
    assert not failure.bad_credentials
    assert not failure.account


def test_only_a_401_to_our_own_key_rests_the_provider() -> None:
    """A 403 is often one model refused while the others answer: it rests nothing."""
    assert classify_response(401, body("invalid_api_key"), {}).bad_credentials
    refused = classify_response(403, body("model_not_allowed", "not allowed to use gpt-4o"), {})
    assert not refused.bad_credentials
    assert not refused.account
    assert "not allowed to use gpt-4o" in refused.message


def test_context_length_asks_the_app_to_clear_context() -> None:
    """CONTEXT_LENGTH carries action CLEAR_CONTEXT in its envelope."""
    failure = classify_response(400, body("context_length_exceeded"), {})
    assert failure.envelope("r")["error"]["action"] == "CLEAR_CONTEXT"


def test_upstream_text_never_carries_a_key() -> None:
    """Key-like strings in upstream messages are redacted before we repeat them."""
    failure = classify_response(400, body("invalid_value", "bad key sk-proj-abcdef123456 used"), {})
    assert "sk-proj" not in failure.message
    assert scrub("Authorization: Bearer abc.def") == "Authorization: [redacted]"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"x-ratelimit-reset-tokens": "1h2m3.5s"}, 3723.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_hints(headers: dict[str, str], seconds: float | None) -> None:
    """retry-after-ms beats Retry-After beats OpenAI's x-ratelimit-reset-* durations."""
    assert retry_after_s(headers) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_as_http_date_is_in_the_future() -> None:
    """Retry-After may be an HTTP date; a date in the past means retry now."""
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_a_client_mistake_found_during_an_attempt_is_neither_retried_nor_fallen_back() -> None:
    """Our own INVALID_INPUT raised mid-attempt (a body that cannot be sent) stays a 400."""
    err = SidecarError(ErrorCode.INVALID_INPUT, "too deep", reason="too_deep")
    failure = classify_exception(err)
    assert (failure.code, failure.retry, failure.fallback) == (
        ErrorCode.INVALID_INPUT,
        False,
        False,
    )
    assert failure.reason == "too_deep"
    network = classify_exception(SidecarError(ErrorCode.NETWORK, "reset"))
    assert (network.retry, network.fallback) == (True, True)
