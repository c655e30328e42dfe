"""Redis backends: exact across every sidecar instance that shares the Redis.

Each decision is one round trip: a Lua script that checks and records atomically, with the
Redis server's ``TIME`` as the clock so instances whose clocks disagree still agree on windows.
Every key expires. Callers put a hash tag in keys that one script touches together, so each
script stays in one slot and Redis Cluster works.

Commands time out after ``timeout_s`` (tens of milliseconds): a slow or dead Redis turns into
an error the caller handles (fail open to an in-process fallback, or refuse), never a hang.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar.backends import Health, Window

# KEYS[1] sliding log (sorted set of hit times in µs); ARGV limit, window µs, cost.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count + cost <= limit then
  for i = 1, cost do
    redis.call('ZADD', KEYS[1], now, now .. ':' .. (count + i))
  end
  count = count + cost
  allowed = 1
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {allowed, count, reset}
"""

# KEYS[1] counter; ARGV amount, ttl ms.
_ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return value
"""


def redacted(url: str) -> str:
    """The URL without its password, for logs and health messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
        f":{parts.port}" if parts.port else ""
    )
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, *, timeout_s: float = 0.05) -> aioredis.Redis:
    """A pooled client; connects on first use, so an absent Redis does not stop start-up."""
    return aioredis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=max(timeout_s, 0.2),
        health_check_interval=30,
    )


async def ping(client: aioredis.Redis, url: str) -> Health:
    started = time.perf_counter()
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return Health("unhealthy", f"{redacted(url)}: {type(exc).__name__}: {exc}", None, "redis")
    latency_ms = (time.perf_counter() - started) * 1000
    return Health("healthy", redacted(url), latency_ms, "redis")


class RedisCounters:
    def __init__(self, client: aioredis.Redis, url: str) -> None:
        self.client = client
        self.url = url
        self._hit = client.register_script(_HIT)
        self._add = client.register_script(_ADD)

    async def hit(self, key: str, *, limit: int, window_s: float, cost: int = 1) -> Window:
        allowed, count, reset_us = await self._hit(
            keys=[key], args=[limit, int(window_s * 1_000_000), cost]
        )
        return Window(bool(allowed), int(count), limit, int(reset_us) / 1_000_000)

    async def add(self, key: str, amount: int, *, ttl_s: float) -> int:
        return int(await self._add(keys=[key], args=[amount, max(1, int(ttl_s * 1000))]))

    async def read(self, key: str) -> int:
        value = await self.client.get(key)
        return int(value) if value is not None else 0

    async def health(self) -> Health:
        return await ping(self.client, self.url)

    async def close(self) -> None:
        pass  # the shared client is closed by the backends


class RedisCache:
    def __init__(self, client: aioredis.Redis, url: str) -> None:
        self.client = client
        self.url = url

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(key)
        if value is None:
            return None
        return value if isinstance(value, bytes) else value.encode()

    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None:
        await self.client.set(key, value, px=max(1, int(ttl_s * 1000)))

    async def clear(self, prefix: str) -> int:
        removed = 0
        async for batch in _scan_batches(self.client, prefix):
            removed += int(await self.client.unlink(*batch))
        return removed

    async def health(self) -> Health:
        return await ping(self.client, self.url)

    async def close(self) -> None:
        pass


async def _scan_batches(
    client: aioredis.Redis, prefix: str, size: int = 500
) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=size):
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
