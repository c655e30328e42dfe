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
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sidecar.backends import Admission, Health, Limit, Tally, Window
from sidecar.backends.resp import PipelinedRedis

# One rate-limit decision: check every limit, record all of them only if all have room.
# KEYS: tally hash (or a placeholder), then one key per limit.
# ARGV: tally field ('' for none), tally ttl ms, record (1) or peek (0), then per limit:
#       kind ('log' | 'gcra' | 'sum'), limit, window µs (a sum's lifetime), cost.
# Returns per limit {fits, count, reset µs}, flattened: each limit's own verdict (the decision
# is admitted only if every limit fits).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = (#ARGV - 3) / 4
local record = ARGV[3] == '1'
local spec, state = {}, {}
local ok = true
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local key, kind = KEYS[i + 1], ARGV[b + 1]
  local limit, window, cost = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  spec[i] = {key, kind, limit, window, cost}
  if kind == 'log' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    local nth, fits = 0, count + cost <= limit
    if not fits then
      ok = false
      nth = count + cost - limit - 1
    end
    state[i] = {count, nth, fits}
  elseif kind == 'sum' then
    local total = tonumber(redis.call('GET', key) or '0')
    local fits = total + cost <= limit
    if not fits then ok = false end
    state[i] = {total, 0, fits}
  else
    local interval = window / limit
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local over = tat + cost * interval - now - window
    local fits = over <= 0
    if not fits then ok = false else over = 0 end
    state[i] = {tat, over, fits}
  end
end
local out = {}
for i = 1, n do
  local key, kind, limit, window, cost = unpack(spec[i])
  local admitted = ok and record
  local count, reset
  if kind == 'log' then
    count = state[i][1]
    if admitted then
      for j = 1, cost do redis.call('ZADD', key, now, now .. ':' .. (count + j)) end
      count = count + cost
      redis.call('PEXPIRE', key, math.ceil(window / 1000))
    end
    -- admitted: until the oldest hit leaves; refused: until there is room for this cost
    local nth = state[i][3] and 0 or state[i][2]
    local entry = redis.call('ZRANGE', key, nth, nth, 'WITHSCORES')
    reset = 0
    if entry[2] then reset = tonumber(entry[2]) + window - now end
  elseif kind == 'sum' then
    count, reset = state[i][1], 0
    if admitted then
      count = redis.call('INCRBY', key, cost)
      redis.call('PEXPIRE', key, math.ceil(window / 1000))
    end
  else
    local interval = window / limit
    local tat = state[i][1]
    reset = state[i][2]
    if admitted then
      tat = tat + cost * interval
      redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
    end
    count = math.ceil((tat - now) / interval - 1e-9)
  end
  out[#out + 1] = state[i][3] and 1 or 0  -- this limit's own verdict
  out[#out + 1] = count
  out[#out + 1] = reset
end
if record and ARGV[1] ~= '' then
  redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':requests', 1)
  if not ok then redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':limited', 1) end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return out
"""

# KEYS[1] GCRA cell; ARGV delta units, limit, window µs. Moves the arrival time, never before now.
_SETTLE = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(value) + tonumber(ARGV[1]) * tonumber(ARGV[3]) / tonumber(ARGV[2])
if tat <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return 1
"""

# KEYS[1] counter; ARGV amount, limit, ttl ms. Adds only within the limit; {added, total}.
_RESERVE = """
local total = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if total + amount > tonumber(ARGV[2]) then return {0, total} end
total = redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, total}
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
    """Decisions go through the pipelined hot-path connection; the rest through redis-py."""

    def __init__(self, client: aioredis.Redis, url: str, hot: PipelinedRedis | None = None):
        self.client = client
        self.url = url
        self.hot = hot or PipelinedRedis(url)
        self._admit = self.hot.script(_ADMIT)
        self._settle = self.hot.script(_SETTLE)
        self._reserve = self.hot.script(_RESERVE)
        self._add = self.hot.script(_ADD)

    @property
    def degraded(self) -> bool:
        return False

    async def admit(
        self, limits: Sequence[Limit], tally: Tally | None = None, also_get: Sequence[str] = ()
    ) -> Admission:
        keys, args = _script_input(limits, tally, record=True)
        # One round trip for the decision and the lookups (pipelined, not a transaction).
        flat, *values = await self.hot.evalsha(
            self._admit, keys, args, *(("GET", key) for key in also_get)
        )
        fetched = {key: _bytes(value) for key, value in zip(also_get, values, strict=True)}
        return Admission(_windows(flat, limits), fetched)

    async def peek(self, limits: Sequence[Limit]) -> list[Window]:
        peeked = [replace(limit, cost=0) for limit in limits]
        keys, args = _script_input(peeked, None, record=False)
        (flat,) = await self.hot.evalsha(self._admit, keys, args)
        return _windows(flat, peeked)

    async def settle(self, corrections: Sequence[tuple[Limit, int]]) -> None:
        if not corrections:
            return
        # One write, one round trip for all of them; the script is loaded by the first call.
        first, *rest = (
            ("EVALSHA", self._settle, 1, limit.key, delta, limit.limit, int(limit.window_s * 1e6))
            for limit, delta in corrections
        )
        await self.hot.evalsha(self._settle, first[3:4], first[4:], *rest)

    async def tallies(self, key: str) -> dict[str, int]:
        raw = await self.client.hgetall(key)
        return {_text(name): int(value) for name, value in raw.items()}

    async def add(self, key: str, amount: int, *, ttl_s: float) -> int:
        (value,) = await self.hot.evalsha(self._add, [key], [amount, max(1, int(ttl_s * 1000))])
        return int(value)

    async def reserve(self, key: str, amount: int, *, limit: int, ttl_s: float) -> tuple[bool, int]:
        ttl_ms = max(1, int(ttl_s * 1000))
        ((added, total),) = await self.hot.evalsha(self._reserve, [key], [amount, limit, ttl_ms])
        return bool(added), int(total)

    async def read(self, key: str) -> int:
        (value,) = await self.hot.execute(("GET", key))
        raw = _reply(value)
        return int(raw) if raw is not None else 0

    async def health(self) -> Health:
        return await ping(self.client, self.url)

    async def close(self) -> None:
        await self.hot.close()  # the shared redis-py client is closed by the backends


def _script_input(
    limits: Sequence[Limit], tally: Tally | None, *, record: bool
) -> tuple[list[str], list[str | int]]:
    keys = [tally.key if tally else limits[0].key, *(limit.key for limit in limits)]
    args: list[str | int] = [
        tally.field if tally else "",
        int((tally.ttl_s if tally else 1) * 1000),
        int(record),
    ]
    for limit in limits:
        args += [limit.kind, limit.limit, int(limit.window_s * 1_000_000), limit.cost]
    return keys, args


def _windows(flat: Sequence[int], limits: Sequence[Limit]) -> list[Window]:
    return [
        Window(bool(flat[i]), int(flat[i + 1]), limit.limit, int(flat[i + 2]) / 1_000_000)
        for i, limit in zip(range(0, len(flat), 3), limits, strict=True)
    ]


def _reply(value: object) -> bytes | None:
    """A hot-path reply: an error reply is raised, a bulk string returned as bytes."""
    if isinstance(value, Exception):
        raise value
    return value if isinstance(value, bytes) else None


def _bytes(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else value.encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCache:
    """Lookups and writes on the pipelined hot-path connection; invalidation through redis-py."""

    def __init__(self, client: aioredis.Redis, url: str, hot: PipelinedRedis | None = None):
        self.client = client
        self.url = url
        self.hot = hot or PipelinedRedis(url)

    async def get(self, key: str) -> bytes | None:
        (value,) = await self.hot.execute(("GET", key))
        return _reply(value)

    async def set(self, key: str, value: bytes, *, ttl_s: float) -> None:
        (reply,) = await self.hot.execute(("SET", key, value, "PX", max(1, int(ttl_s * 1000))))
        _reply(reply)

    async def clear(self, prefix: str) -> int:
        removed = 0
        async for batch in _scan_batches(self.client, prefix):
            removed += int(await self.client.unlink(*batch))
        return removed

    async def health(self) -> Health:
        return await ping(self.client, self.url)

    async def close(self) -> None:
        await self.hot.close()


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
