"""The export process: span records in on stdin, OTLP out, off the sidecar's interpreter.

Started by :class:`sidecar.telemetry.shipping.SpanShipper` as
``python -m sidecar.telemetry.export_process``, with the sidecar's environment, so the standard
variables configure it as they would the SDK in the sidecar: ``OTEL_EXPORTER_OTLP_*`` (endpoint,
protocol, headers, compression, certificates, timeout), the span limits ``OTEL_*_LIMIT``, and
the batch settings ``OTEL_BSP_MAX_QUEUE_SIZE`` (2048), ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` (512)
and ``OTEL_BSP_SCHEDULE_DELAY`` (here 1 s by default rather than the SDK's 5 s, so the collector
sees spans within about a second). Each export request costs ~0.75 ms of CPU whatever its size
(the SDK's HTTP client reads the proxy settings from the whole environment every time), so
fewer, fuller batches are cheaper: with the 200 ms this used before, this process took 42 µs
of CPU per span at 300 spans/s and 17 µs at 1,100; with 1 s, 21 µs and 15 µs.

Two threads: the main one reads frames and queues their records, waiting for room when the
queue is full; the exporter thread encodes batches (:mod:`~sidecar.telemetry.otlp_wire`, the
SDK's bytes at a tenth of its cost) and sends them with the SDK's OTLP exporter. A slow or dead
collector therefore fills this process's bounded queue, then the pipe, and then the sidecar
stops recording spans: each span lost is counted where it is lost (here, only spans the
collector refused, or a frame larger than the whole queue; in the sidecar, the rest). The
process runs at the lowest priority (``SCHED_IDLE``), so on a busy core the sidecar's event loop
always wins; on a saturated one spans are dropped (and counted) rather than requests slowed.
End of input (the sidecar closed the pipe, or died) sends what is queued and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import requests
from opentelemetry.sdk.environment_variables import (
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from sidecar.telemetry.otlp_wire import WireEncoder
from sidecar.telemetry.setup import ExportWarnings, otlp_protocol, otlp_span_exporter
from sidecar.telemetry.shipping import FRAME_HEADER, Counters, Setup
from sidecar.telemetry.spans import SpanRecord, readable_span

log = logging.getLogger("sidecar.telemetry.export")

DEFAULT_SCHEDULE_DELAY_MS = 1000
COUNTERS_EVERY_S = 0.1


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        log.warning("%s is not an integer; using %d", name, default)
        return default
    return value if value > 0 else default


class Sender:
    """How a batch of records leaves: wire bytes through the SDK exporter's own HTTP client
    (its endpoint, headers, compression, TLS, timeout and retries), or, where the exporter has
    no such client (gRPC, other SDK versions), the SDK's spans through its public ``export``."""

    MAX_REQUEST_BYTES = 64 * 1024 * 1024  # as the SDK's HTTP exporter: larger is refused

    def __init__(self, exporter: SpanExporter, wire: WireEncoder) -> None:
        self.exporter, self.wire = exporter, wire
        client = getattr(exporter, "_client", None)
        self.client = client if callable(getattr(client, "export", None)) else None
        _settle_environment(client)

    def send(self, records: Sequence[SpanRecord]) -> bool:
        if self.client is None:
            wire = self.wire
            spans = [readable_span(r, wire.resource, wire.scope, wire.limits) for r in records]
            return self.exporter.export(spans) is SpanExportResult.SUCCESS
        data = self.wire.request(records)
        if len(data) > self.MAX_REQUEST_BYTES:
            log.warning(
                "dropping %d spans: %d bytes is over the request limit", len(records), len(data)
            )
            return False
        return bool(self.client.export(data).success)

    def shutdown(self) -> None:
        self.exporter.shutdown()


def _settle_environment(client: object) -> None:
    """Read the proxy and CA-bundle variables once, not on every export request.

    The SDK's HTTP transport is a ``requests`` session that trusts the environment, so every
    request scans every environment variable for proxy settings: 0.55 ms of CPU per request
    with 35 variables, 1.5 ms with 300 (a Kubernetes pod's service variables). This process's
    environment and endpoint never change, so the session is given what ``requests`` would have
    read (the same call) and then stops reading it.
    """
    session = getattr(getattr(client, "_transport", None), "_session", None)
    endpoint = getattr(client, "_endpoint", None)
    if not isinstance(session, requests.Session) or not isinstance(endpoint, str):
        return  # another transport or SDK version: left as it is
    if not session.trust_env:
        return
    settings = session.merge_environment_settings(endpoint, {}, None, session.verify, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False


class Batcher:
    """The SDK's batch span processor, reduced to what this process needs, with counts."""

    def __init__(
        self,
        sender: Sender,
        counters: Counters,
        *,
        max_queue: int,
        batch_size: int,
        delay_s: float,
    ) -> None:
        self.sender, self.counters = sender, counters
        self.batch_size, self.delay_s = batch_size, delay_s
        self.queue: deque[SpanRecord] = deque(maxlen=max_queue)
        self.exported = self.dropped = self.failed = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._published = 0.0
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, records: Sequence[SpanRecord]) -> None:
        """Queue a frame's records, first waiting for room: while the queue is full this stops
        reading the pipe, so the pipe fills and the sidecar stops recording spans (counting
        each as dropped) instead of building spans only for this queue to drop them."""
        with self._wake:
            room = self.queue.maxlen or 0
            while self.queue and len(self.queue) + len(records) > room and not self._stopping:
                self._wake.notify_all()  # the exporter takes a batch, then wakes us
                self._wake.wait()
            overflow = len(self.queue) + len(records) - room
            if overflow > 0:  # a frame larger than the whole queue: the deque drops the oldest
                if not self.dropped:
                    log.warning("span export queue smaller than a frame; dropping")
                self.dropped += overflow
            self.queue.extend(records)
            if len(self.queue) >= self.batch_size:
                self._wake.notify_all()
        self.publish(force=overflow > 0)

    def stop(self, timeout_s: float) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(timeout_s)

    def publish(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._published >= COUNTERS_EVERY_S:
            self._published = now
            self.counters.write(self.exported, self.dropped, self.failed)

    def _take(self) -> list[SpanRecord]:
        with self._wake:
            if len(self.queue) < self.batch_size and not self._stopping:
                self._wake.wait(self.delay_s)
            count = min(self.batch_size, len(self.queue))
            batch = [self.queue.popleft() for _ in range(count)]
            self._wake.notify_all()  # room for a reader waiting in ``add``
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self._export(batch)
            elif self._stopping:
                break
        self.sender.shutdown()

    def _export(self, batch: list[SpanRecord]) -> None:
        try:
            sent = self.sender.send(batch)
        except Exception:  # the exporter should not raise; if it does, the batch is lost
            log.exception("exporting %d spans failed", len(batch))
            sent = False
        if sent:
            self.exported += len(batch)
        else:
            self.failed += len(batch)
        self.publish(force=True)


def read_frames(stream: BinaryIO) -> Iterator[object]:
    """Yield each frame's unpickled payload until end of input."""
    while True:
        header = stream.read(FRAME_HEADER.size)
        if len(header) < FRAME_HEADER.size:
            return
        (size,) = FRAME_HEADER.unpack(header)
        data = stream.read(size)
        if len(data) < size:
            return
        yield pickle.loads(data)


def serve(stream: BinaryIO, counters: Counters) -> int:
    frames = read_frames(stream)
    setup = next(frames, None)
    if not isinstance(setup, Setup):
        return 0  # the sidecar closed before sending anything
    protocol = otlp_protocol("traces", os.environ)
    if protocol is None:
        log.error("the export process started without an OTLP traces endpoint; exiting")
        return 1
    resource = Resource(setup.resource_attributes, setup.resource_schema_url)
    wire = WireEncoder(resource, InstrumentationScope(*setup.scope), SpanLimits())
    batcher = Batcher(
        Sender(otlp_span_exporter(protocol), wire),
        counters,
        max_queue=_env_int(OTEL_BSP_MAX_QUEUE_SIZE, 2048),
        batch_size=_env_int(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512),
        delay_s=_env_int(OTEL_BSP_SCHEDULE_DELAY, DEFAULT_SCHEDULE_DELAY_MS) / 1000,
    )
    batcher.start()
    for records in frames:
        if isinstance(records, list):
            batcher.add(records)
    batcher.stop(timeout_s=30.0)  # the sidecar stops waiting long before: it kills us
    batcher.publish(force=True)
    return 0


def lower_priority(nice: int) -> None:
    """Run only on what the sidecar leaves: SCHED_IDLE (Linux), else the given niceness.

    Under SCHED_IDLE, the sidecar waking up preempts this process at once, whatever it is doing;
    a merely niced process may keep the CPU for the rest of its time slice (a millisecond or
    more), which is a request's whole latency budget.
    """
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError:
            pass
    os.nice(nice)


EXPORT_CPUS_ENV = "SIDECAR_EXPORT_CPUS"


def place(spec: str | None) -> None:
    """Run on the CPUs ``spec`` lists (``SIDECAR_EXPORT_CPUS``: "1", "2-3", "1,3"), if set.

    Unset, this process shares the sidecar's CPUs. On the sidecar's own core its encoding
    bursts, however low their priority, evict the caches the event loop was using: with the
    sidecar pinned to one core at 500 requests/s, the sidecar took 100-400 µs more CPU per
    request with export on than off, against ~70 µs with this process on the other core.
    Called before the exporter thread starts, so it follows.
    """
    if not spec or not hasattr(os, "sched_setaffinity"):
        return
    try:
        os.sched_setaffinity(0, parse_cpus(spec))
    except (ValueError, OSError) as exc:
        log.warning(
            "%s=%r not applied (%s); the export process stays on the sidecar's CPUs",
            EXPORT_CPUS_ENV, spec, exc,
        )  # fmt: skip


def parse_cpus(spec: str) -> set[int]:
    """CPU numbers from a list of numbers and ranges: "0", "2-3", "1,4-5"."""
    cpus: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        if first:
            cpus.update(range(int(first), int(last or first) + 1))
    if not cpus:
        raise ValueError("no CPU listed")
    return cpus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counters-fd", type=int, required=True)
    parser.add_argument("--nice", type=int, default=19, help="where SCHED_IDLE is missing")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(ExportWarnings())
    lower_priority(args.nice)
    place(os.environ.get(EXPORT_CPUS_ENV))
    return serve(sys.stdin.buffer, Counters(args.counters_fd))


if __name__ == "__main__":
    sys.exit(main())
