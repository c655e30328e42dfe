"""Choose and open the backends the configuration names (see :mod:`sidecar.backends`)."""

from __future__ import annotations

import functools
import logging

from sidecar.backends import Backends, UsageStore
from sidecar.backends.guarded import GuardedCounters
from sidecar.backends.jobs import RedisJobs
from sidecar.backends.memory import MemoryCache, MemoryCounters, MemoryJobs
from sidecar.backends.redis import RedisCache, RedisCounters, connect, ping, redacted
from sidecar.backends.resp import PipelinedRedis
from sidecar.backends.usage import PostgresUsage, SqliteUsage
from sidecar.config import Settings

log = logging.getLogger(__name__)


async def open_usage_store(url: str) -> UsageStore:
    store: SqliteUsage | PostgresUsage
    if url.startswith(("postgresql://", "postgres://")):
        store = PostgresUsage(url)
    else:
        store = SqliteUsage(url)
    await store.open()
    return store


async def open_backends(settings: Settings) -> Backends:
    """Redis for counters, cache and jobs when ``redis_url`` is set; the usage store by URL.

    An unreachable Redis or database is logged once here and shows in ``/readyz``; the process
    starts anyway and the clients reconnect when the service comes back.
    """
    usage = await open_usage_store(settings.database_url)
    if settings.redis_url is None:
        cache = MemoryCache(max_bytes=settings.backends.cache_max_bytes)
        jobs = MemoryJobs(keep_completed_s=settings.jobs.keep_completed_s)
        return Backends(MemoryCounters(), cache, usage, jobs)

    url = settings.redis_url
    timeout_s = settings.backends.redis_timeout_ms / 1000
    client = connect(url, timeout_s=timeout_s)
    health = await ping(client, url)
    if health.status != "healthy":
        log.error(
            "Redis at %s is unreachable (%s); /readyz reports it", redacted(url), health.message
        )
    hot = PipelinedRedis(url, timeout_s=timeout_s)  # the request path's one connection
    backends = Backends(
        # A dead Redis must not stop limiting: fail open to in-process limits, per instance.
        GuardedCounters(
            RedisCounters(client, url, hot), cooldown_s=settings.backends.redis_cooldown_s
        ),
        RedisCache(client, url, hot),
        usage,
        # BullMQ's own keys ("bull" prefix by default), so Node apps see the same queues.
        RedisJobs(
            url,
            prefix=settings.jobs.prefix,
            keep_completed_s=settings.jobs.keep_completed_s,
            lock_ms=settings.jobs.lock_ms,
            stalled_interval_ms=settings.jobs.stalled_interval_ms,
        ),
    )
    backends.closers.append(client.aclose)
    backends.redis_ping = functools.partial(ping, client, url)
    return backends
