"""The last stage: send the exchange to its provider and hand back the reply.

Model calls (``POST`` to a model endpoint) get classified errors in the OpenAI envelope; any
other ``/v1/*`` request is forwarded unchanged, error bodies included, and its response body is
streamed through as it arrives (files can be large).

Request headers are an allow list: what an OpenAI-compatible upstream needs, never the app's
credentials, cookies or billing choices (``OpenAI-Organization``/``-Project`` would pick what
the sidecar's key is billed to), never hop-by-hop headers, and one ``traceparent``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from sidecar.config import Provider
from sidecar.exchange import Exchange, Reply
from sidecar.openai_api import is_model_call
from sidecar.upstream.classify import classify_response, garbage
from sidecar.upstream.transport import Transport, UpstreamRequest

_FORWARD = frozenset(
    {"content-type", "accept", "user-agent", "openai-beta", "idempotency-key", "traceparent",
     "tracestate"}
)  # fmt: skip
_FORWARD_PREFIXES = ("x-stainless-",)  # the official SDKs' own client telemetry

_DROP_RESPONSE = frozenset(
    {
        "connection",
        "content-length",
        "content-encoding",
        "keep-alive",
        "transfer-encoding",
        "date",
        "server",
        "x-request-id",
        "set-cookie",
    }
)


def request_headers(ex: Exchange, provider: Provider) -> dict[str, str]:
    named_by_connection = {
        token.strip().lower() for token in ex.headers.get("Connection", "").split(",")
    }
    headers = {
        lower: value
        for name, value in ex.headers.items()
        if (
            (lower := name.lower()) in _FORWARD
            or lower.startswith(_FORWARD_PREFIXES)
            or lower in provider.forward_headers
        )
        and lower not in named_by_connection
    }
    if api_key := provider.api_key():
        headers["authorization"] = f"Bearer {api_key}"
    elif sends_client_key(ex, provider):
        headers["authorization"] = ex.headers["Authorization"]
    headers["x-request-id"] = ex.request_id
    headers.update(ex.upstream_headers)  # our traceparent replaces the app's: one parent
    return headers


def sends_client_key(ex: Exchange, provider: Provider) -> bool:
    """Whether the upstream call carries the app's own key rather than the sidecar's."""
    return (
        provider.forward_client_key
        and not provider.api_key()
        and ex.headers.get("Authorization") is not None
    )


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in _DROP_RESPONSE}


class UpstreamCall:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def __call__(self, ex: Exchange) -> Reply:
        provider = ex.provider
        assert provider is not None, "the routing stage runs before the upstream call"
        url = f"{provider.base_url}/{ex.path}" + (f"?{ex.query}" if ex.query else "")
        timeout_s = provider.timeout_s
        if ex.deadline is not None:
            timeout_s = min(timeout_s, max(0.001, ex.deadline - time.monotonic()))
        model_call = is_model_call(ex.method, ex.path)
        # Streams and pass-through bodies are read piece by piece: bound each read, not the total.
        piecewise = ex.stream or (not model_call and ex.method != "HEAD")
        request = UpstreamRequest(
            method=ex.method,
            url=url,
            headers=request_headers(ex, provider),
            body=ex.upstream_body(),
            timeout_s=timeout_s,
            stream=piecewise,
        )
        ex.attempts += 1
        sent = time.perf_counter()
        response = await self.transport.send(request)
        if response.status >= 400 and model_call:
            body = await response.read()
            ex.upstream_s += time.perf_counter() - sent
            raise classify_response(
                response.status,
                body,
                response.headers,
                ex.provider_name,
                client_key=sends_client_key(ex, provider),
            )
        headers = response_headers(response.headers)
        ex.upstream_s += time.perf_counter() - sent
        if ex.stream and response.headers.get("Content-Type", "").startswith("text/event-stream"):
            return Reply(response.status, headers, stream=response.events(), release=response.close)
        if piecewise and not model_call:
            return Reply(
                response.status,
                headers,
                stream=response.chunks(),
                sse=False,
                release=response.close,
            )
        sent = time.perf_counter()
        body = await response.read()
        ex.upstream_s += time.perf_counter() - sent
        reply = Reply(response.status, headers, body=body)
        if model_call and reply.json() is None:
            raise garbage(ex.provider_name, f"HTTP {response.status}, {len(body)} bytes")
        return reply
