"""The network seam: one small protocol between the pipeline and the model providers.

``HttpTransport`` is the real one (one aiohttp ``ClientSession`` for the process, keep-alive per
provider host). Library errors become :class:`SidecarError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from sidecar.errors import ErrorCode, SidecarError


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    timeout_s: float
    stream: bool = False


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...
    def events(self) -> AsyncGenerator[bytes]: ...
    def chunks(self) -> AsyncGenerator[bytes]: ...
    def close(self) -> None: ...


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...
    async def close(self) -> None: ...


def network_error(exc: BaseException, url: str) -> SidecarError:
    """Translate a transport failure; the message names the host, never a key."""
    host = url.split("/", 3)[2] if "://" in url else url
    if isinstance(exc, TimeoutError):
        return SidecarError(ErrorCode.TIMEOUT, f"Upstream {host} did not answer in time.")
    return SidecarError(
        ErrorCode.NETWORK, f"Could not reach upstream {host}: {type(exc).__name__}: {exc}"
    )


class HttpResponse:
    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise network_error(exc, self._url) from exc
        finally:
            self._response.release()

    async def events(self) -> AsyncGenerator[bytes]:
        """Server-sent events, each whole (ending in a blank line), as soon as it has arrived.

        The buffer holds at most one partial event; an event larger than ``MAX_EVENT_BYTES``
        is an upstream failure, not a reason to grow without bound. Only the bytes that
        arrived since the last look are searched for an event's end.
        """
        buffer = bytearray()
        searched = 0  # the end of an event cannot lie in buffer[:searched - 3]
        try:
            async for chunk in self._response.content.iter_any():
                buffer += chunk
                while (end := _event_end(buffer, max(0, searched - 3))) > 0:
                    yield bytes(buffer[:end])
                    del buffer[:end]
                    searched = 0
                searched = len(buffer)
                if searched > MAX_EVENT_BYTES:
                    raise SidecarError(
                        ErrorCode.NETWORK,
                        f"Upstream sent a stream event over {MAX_EVENT_BYTES} bytes.",
                    )
            if buffer.strip():
                yield bytes(buffer)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise network_error(exc, self._url) from exc
        finally:
            # close, not release: if the client went away mid-stream the upstream must see it.
            self._response.close()

    async def chunks(self) -> AsyncGenerator[bytes]:
        """The body as it arrives (pass-through responses: files, non-SSE streams)."""
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK_BYTES):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise network_error(exc, self._url) from exc
        finally:
            self._response.close()

    def close(self) -> None:
        self._response.close()


MAX_EVENT_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


def _event_end(buffer: bytearray, start: int) -> int:
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\r\n\r\n", start)
    if crlf != -1 and (lf == -1 or crlf < lf):
        return crlf + 4
    return lf + 2 if lf != -1 else -1


class HttpTransport:
    def __init__(self, *, limit_per_host: int = 0) -> None:
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=self._limit_per_host, keepalive_timeout=60
            )
            # No cookie jar: one shared jar would replay a provider's Set-Cookie (e.g. its CDN's
            # bot cookie) on every user's requests, and API calls never need cookies.
            self._session = aiohttp.ClientSession(
                connector=connector,
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(self, request: UpstreamRequest) -> HttpResponse:
        if request.stream:
            # A stream may run for minutes; bound the wait for each read instead of the total.
            timeout = aiohttp.ClientTimeout(
                sock_connect=request.timeout_s, sock_read=request.timeout_s
            )
        else:
            timeout = aiohttp.ClientTimeout(total=request.timeout_s)
        try:
            response = await self._client().request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body or None,
                timeout=timeout,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise network_error(exc, request.url) from exc
        return HttpResponse(response, request.url)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        # Let the connector's transports finish closing before the loop goes away.
        await asyncio.sleep(0)
