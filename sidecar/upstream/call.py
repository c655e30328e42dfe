"""The last stage: send the exchange to its provider and hand back the reply.

Known model endpoints get classified errors (the OpenAI envelope); any other ``/v1/*`` path is
forwarded unchanged, error bodies included.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.identity import MODEL_ENDPOINTS
from sidecar.upstream.classify import classify_response, garbage
from sidecar.upstream.transport import Transport, UpstreamRequest

# Hop-by-hop headers (RFC 9110 7.6.1) and those the transport or the sidecar sets itself.
_DROP_REQUEST = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "x-request-id",
    }
)
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


def request_headers(ex: Exchange, api_key: str | None) -> dict[str, str]:
    headers = {
        name: value
        for name, value in ex.headers.items()
        if name.lower() not in _DROP_REQUEST and not name.lower().startswith("x-sidecar-")
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    elif (client_auth := ex.headers.get("Authorization")) is not None:
        headers["Authorization"] = client_auth
    headers["X-Request-Id"] = ex.request_id
    headers.update(ex.upstream_headers)
    return headers


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
        request = UpstreamRequest(
            method=ex.method,
            url=url,
            headers=request_headers(ex, provider.api_key()),
            body=ex.upstream_body(),
            timeout_s=timeout_s,
            stream=ex.stream,
        )
        ex.attempts += 1
        sent = time.perf_counter()
        response = await self.transport.send(request)
        classified = ex.path in MODEL_ENDPOINTS
        if response.status >= 400 and classified:
            body = await response.read()
            ex.upstream_s += time.perf_counter() - sent
            raise classify_response(response.status, body, response.headers, ex.provider_name)
        headers = response_headers(response.headers)
        if ex.stream and response.headers.get("Content-Type", "").startswith("text/event-stream"):
            ex.upstream_s += time.perf_counter() - sent
            return Reply(response.status, headers, stream=response.events())
        body = await response.read()
        ex.upstream_s += time.perf_counter() - sent
        reply = Reply(response.status, headers, body=body)
        if classified and reply.json() is None:
            raise garbage(ex.provider_name, f"HTTP {response.status}, {len(body)} bytes")
        return reply
