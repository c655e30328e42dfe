"""Every error the sidecar produces has the envelope and makes the SDK raise its usual class."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.helpers import MESSAGES, PROVIDER_KEY, MakeSidecar, sdk, sim_provider


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code", "user_message", "retry", "request_id"} <= set(error)
    assert error["request_id"] == exc.response.headers["x-request-id"]
    return error


async def post_raw(server: TestServer, data: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.make_url("/v1/chat/completions"),
            data=data,
            headers={"Content-Type": "application/json"},
        ) as resp,
    ):
        return resp.status, await resp.json(), dict(resp.headers)


async def test_malformed_json_is_invalid_input(sidecar: TestServer) -> None:
    """A body that is not JSON gets 400 INVALID_INPUT and is never retried by SDKs."""
    status, body, headers = await post_raw(sidecar, b'{"model": "gpt-4o", "messages": [')
    assert status == 400
    assert body["error"]["code"] == "INVALID_INPUT"
    assert body["error"]["reason"] == "malformed_json"
    assert headers["x-should-retry"] == "false"


async def test_json_that_is_not_an_object_is_invalid_input(sidecar: TestServer) -> None:
    """A JSON array or string body is rejected with a message saying what to send."""
    status, body, _ = await post_raw(sidecar, b'["gpt-4o"]')
    assert status == 400
    assert "JSON object" in body["error"]["message"]


async def test_missing_model_is_invalid_input(client: openai.AsyncOpenAI) -> None:
    """A model endpoint without a model is a BadRequestError naming the param."""
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="", messages=MESSAGES)
    assert error_of(caught.value)["param"] == "model"


async def test_body_over_the_limit_is_payload_too_large(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """A body over limits.max_body_bytes gets 413 PAYLOAD_TOO_LARGE before any upstream call."""
    server = await make_sidecar(str(upstream.make_url("/v1")), limits={"max_body_bytes": 2048})
    async with sdk(server) as client:
        big: list[openai.types.chat.ChatCompletionMessageParam] = [
            {"role": "user", "content": "x" * 5000}
        ]
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=big)
    assert caught.value.status_code == 413
    assert error_of(caught.value)["code"] == "PAYLOAD_TOO_LARGE"


async def test_unreachable_upstream_is_network_error(
    make_sidecar: MakeSidecar, unused_tcp_port: int
) -> None:
    """Connection refused by the provider is 502 NETWORK, an InternalServerError for the SDK."""
    server = await make_sidecar(f"http://127.0.0.1:{unused_tcp_port}/v1")
    async with sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 502
    error = error_of(caught.value)
    assert error["code"] == "NETWORK"
    assert f"127.0.0.1:{unused_tcp_port}" in error["message"]


async def test_upstream_timeout_is_timeout_error(
    upstream: TestServer, make_sidecar: MakeSidecar
) -> None:
    """A provider that does not answer within timeout_s gives 504 TIMEOUT."""
    url = str(upstream.make_url("/v1"))
    provider = sim_provider(url, timeout_s=0.2)
    server = await make_sidecar(
        url, providers={"sim": provider}, operations={"chat": {"max_attempts": 1, "fallbacks": []}}
    )
    async with sdk(server) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, extra_headers={"X-Mock-Outcome": "timeout"}
            )
    assert caught.value.status_code == 504
    assert error_of(caught.value)["code"] == "TIMEOUT"


async def test_unknown_provider_is_invalid_input(client: openai.AsyncOpenAI) -> None:
    """Naming a provider that is not configured is a 400 that lists the configured ones."""
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"X-Sidecar-Provider": "nope"}
        )
    error = error_of(caught.value)
    assert error["reason"] == "unknown_provider"
    assert "sim" in error["message"]


@pytest.mark.parametrize(
    ("outcome", "sdk_error", "status", "code", "retry"),
    [
        ("429", openai.RateLimitError, 429, "RATE_LIMIT", True),
        ("quota", openai.RateLimitError, 429, "QUOTA_EXCEEDED", False),
        ("context", openai.BadRequestError, 400, "CONTEXT_LENGTH", False),
        ("503", openai.InternalServerError, 503, "MODEL_UNAVAILABLE", True),
        ("garbage", openai.InternalServerError, 502, "NETWORK", True),
    ],
)
async def test_upstream_errors_are_mapped_to_the_envelope(
    client: openai.AsyncOpenAI,
    outcome: str,
    sdk_error: type[openai.APIStatusError],
    status: int,
    code: str,
    retry: bool,
) -> None:
    """Upstream failures come back as our codes, with the SDK class matching the status; the
    sidecar has applied its retries, so SDKs are told not to retry on top (x-should-retry)."""
    with pytest.raises(sdk_error) as caught:
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"X-Mock-Outcome": outcome}
        )
    assert caught.value.status_code == status
    error = error_of(caught.value)
    assert (error["code"], error["retry"]) == (code, retry)
    assert caught.value.response.headers["x-should-retry"] == "false"
    if code == "CONTEXT_LENGTH":
        assert error["action"] == "CLEAR_CONTEXT"
    if code == "RATE_LIMIT":
        assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_upstream_auth_failure_never_leaks_a_key(client: openai.AsyncOpenAI) -> None:
    """A 401 from the provider is our misconfiguration: 503 to the app, no key in the text."""
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"X-Mock-Outcome": "401"}
        )
    assert caught.value.status_code == 503
    text = caught.value.response.text
    assert PROVIDER_KEY not in text
    assert PROVIDER_KEY[:12] not in text
    assert "api_key_env" in error_of(caught.value)["message"]
