"""Span records leave the sidecar's process: small pickled frames down a pipe to an export process.

Encoding spans to OTLP protobuf costs ~70 µs of pure Python per span; in a thread of the
sidecar's process a 512-span batch held the interpreter for ~40 ms in 5 ms slices, stalling the
event loop for up to one slice at a time while it lasted. Here the request path only appends the
span's record to a list. Every ``interval_s`` (200 ms, or every ``max_records``), a callback on
the event loop pickles the list (~1 µs a span) and writes it, non-blocking, to a pipe read by
:mod:`sidecar.telemetry.export_process`, which builds the SDK's spans, batches them, encodes and
sends them with the SDK's OTLP exporter, configured by the same ``OTEL_*`` variables. A frame
every 200 ms rather than every 50 ms wakes the export process (on the sidecar's core, when the
sidecar is pinned) a quarter as often: at 500 RPS it took 18-26 µs of CPU per request in eight
``bench.export`` runs, against 24-35 µs in eight runs with 50 ms frames.

Nothing here waits for the export process. When the pipe is full (the process is slow, starved
or stuck on a dead collector) the frame is dropped and its spans counted, and until the pipe
takes the rest of its last frame the tracer does not build new spans at all (``full``,
``shed``: each counted as dropped), so a saturated sidecar stops paying for spans it cannot
send. The export process counts what the collector refused (and a frame larger than its whole
queue, the one thing it drops); those counts are read from a small shared file
(:class:`Counters`). Both sides' counts are exported as ``sidecar.telemetry.dropped``.

Frame: a 4-byte little-endian length, then a pickle. The first frame is the :class:`Setup`;
every other one a list of :data:`~sidecar.telemetry.spans.SpanRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.telemetry.spans import SpanRecord

log = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct("<I")
PIPE_BYTES = 1 << 20  # the most a pipe takes without privileges (/proc/sys/fs/pipe-max-size)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True, slots=True)
class Setup:
    """What every span of this process shares: sent once, first."""

    resource_attributes: dict[str, Any]
    resource_schema_url: str
    scope: tuple[str, str | None, str | None]  # name, version, schema URL


class Counters:
    """Cumulative counts the export process keeps in a shared file; read at any time.

    Slots (8-byte integers): spans exported, spans its queue dropped, spans the collector did
    not take (failed or timed-out exports).
    """

    LAYOUT = struct.Struct("<3q")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.map = mmap.mmap(fd, self.LAYOUT.size)

    @classmethod
    def create(cls) -> Counters:
        """A new, zeroed file of counters (already unlinked: nothing is left behind)."""
        fd, path = tempfile.mkstemp(prefix="sidecar-export-")
        os.unlink(path)
        os.ftruncate(fd, cls.LAYOUT.size)
        return cls(fd)

    def read(self) -> tuple[int, int, int]:
        exported, dropped, failed = self.LAYOUT.unpack_from(self.map)
        return exported, dropped, failed

    def write(self, exported: int, dropped: int, failed: int) -> None:
        self.LAYOUT.pack_into(self.map, 0, exported, dropped, failed)

    def close_file(self) -> None:
        """The mapping stays readable; only the descriptor (passed to the child) goes."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SpanShipper:
    """The request path's end of the export: ``add`` a record; the rest happens elsewhere."""

    def __init__(self, setup: Setup, *, interval_s: float = 0.2, max_records: int = 1024) -> None:
        self.interval_s = interval_s
        self.max_records = max_records
        self.dropped = 0  # spans this side dropped (pipe full, export process gone)
        self._pending: list[SpanRecord] = []
        self._unsent = b""  # the rest of a frame the pipe took only part of
        self._armed = False
        self._lock = threading.Lock()  # a span ended off the loop flushes from its own thread
        self._closed = False
        self.counters = Counters.create()
        read_end, self._fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # Linux only; 64 kB otherwise
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._fd, False)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        counters_fd = self.counters.fd
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sidecar.telemetry.export_process",
             "--counters-fd", str(counters_fd)],
            stdin=read_end,
            pass_fds=(counters_fd,),
            env=env,
        )  # fmt: skip
        os.close(read_end)
        self.counters.close_file()
        self._write(_frame(setup))

    def add(self, record: SpanRecord) -> None:
        """Called by each sampled span as it ends: costs an append."""
        pending = self._pending
        pending.append(record)
        if len(pending) >= self.max_records:
            self.flush()
        elif not self._armed:
            self._arm()

    def full(self) -> bool:
        """Whether a span recorded now would be dropped: the pipe has refused part of a frame
        (or the export process is gone), and until it takes that, new records are dropped."""
        return bool(self._unsent) or self._closed

    def shed(self) -> None:
        """A sampled span not recorded because :meth:`full`: counted as dropped here."""
        self._drop(1)

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: ship at once
            self.flush()
            return
        self._armed = True
        loop.call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        self._armed = False
        self.flush()
        if self._unsent and not self._closed:
            self._arm()  # the pipe was full: try the rest again later

    def flush(self) -> None:
        """Pickle what is pending and write it to the pipe, never waiting."""
        records, self._pending = self._pending, []
        with self._lock:
            if self._unsent:
                self._unsent = self._send(self._unsent)
            if not records:
                return
            if self._unsent or self._closed:
                self._drop(len(records))
                return
            try:
                frame = _frame(records)
            except Exception:  # an attribute value pickle cannot take: lose this frame only
                log.exception("could not pack %d spans for export; dropped", len(records))
                self._drop(len(records))
                return
            self._unsent = self._send(frame)

    def _write(self, frame: bytes) -> None:
        with self._lock:
            self._unsent = self._send(frame)

    def _send(self, data: bytes) -> bytes:
        """Write what the pipe takes now; return the rest."""
        if self._fd < 0:
            return b""
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            return data
        except OSError:  # BrokenPipeError: the export process has gone
            self._lost()
            return b""
        return data[written:]

    def _drop(self, spans: int) -> None:
        if not self.dropped:
            log.warning(
                "span export cannot keep up (export process slow or gone); spans are dropped "
                "and counted in sidecar.telemetry.dropped; requests are unaffected"
            )
        self.dropped += spans

    def _lost(self) -> None:
        log.error(
            "the span export process exited (code %s); spans are dropped", self.process.poll()
        )
        os.close(self._fd)
        self._fd = -1
        self._closed = True

    def totals(self) -> tuple[int, int, int]:
        """(spans exported, dropped in a queue, not taken by the collector)."""
        exported, queue_dropped, failed = self.counters.read()
        return exported, queue_dropped + self.dropped, failed

    def shutdown(self, timeout_s: float) -> None:
        """Send what is pending, close the pipe (the export process then sends what it holds),
        and wait for the process at most ``timeout_s``; past that it is killed."""
        deadline = time.monotonic() + timeout_s
        self.flush()
        with self._lock:
            while self._unsent and self._fd >= 0 and time.monotonic() < deadline:
                self._unsent = self._send(self._unsent)
                if self._unsent:
                    time.sleep(0.01)
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("the span export process did not finish in %.1f s; stopped", timeout_s)
            self.process.kill()
            self.process.wait()


def _frame(payload: object) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(data)) + data
