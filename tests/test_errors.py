"""The error envelope: one status, type and message per code; headers a stage adds ride along."""

from __future__ import annotations

import orjson

from sidecar.errors import ErrorCode, SidecarError


def test_an_error_carries_the_headers_its_stage_adds() -> None:
    """A rate-limit rejection keeps its X-RateLimit-* headers next to Retry-After."""
    err = SidecarError(
        ErrorCode.RATE_LIMIT,
        "Rate limit exceeded",
        retry_after_s=11.2,
        headers={"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0"},
    )
    headers = err.headers()
    assert headers["X-RateLimit-Limit"] == "30"
    assert headers["Retry-After"] == "12"
    assert headers["Content-Type"] == "application/json"
    assert "x-should-retry" not in headers


def test_a_non_retryable_error_tells_sdks_not_to_retry() -> None:
    """QUOTA_EXCEEDED says x-should-retry: false and no Retry-After."""
    err = SidecarError(ErrorCode.QUOTA_EXCEEDED, "Budget exhausted", retry_after_s=30)
    assert err.headers()["x-should-retry"] == "false"
    assert "Retry-After" not in err.headers()
    body = orjson.loads(err.body("req-1"))["error"]
    assert (body["code"], body["retry"], body["request_id"]) == ("QUOTA_EXCEEDED", False, "req-1")
