"""CPU meters from /proc: each server's CPU time per request, and what else the machine ran.

CPU time is free of scheduling noise, so it shows a server's cost where latencies cannot; the
machine meter says whether other processes or the hypervisor (steal) disturbed a section. Where
/proc is missing the meters return None and the tables show "-".
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness.report import err
from bench.harness.results import MachineLoad

SETTLE_WINDOW_S = 0.3  # between runs: wait for a window in which the servers were idle
IDLE_SHARE = 0.1  # of one core, both servers together
SETTLE_MAX_S = 10.0


def _process_ticks(pid: int) -> int | None:
    """CPU time (clock ticks) a process has used so far; None where /proc is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _cpu_ticks(pids: Sequence[int]) -> int | None:
    ticks = [_process_ticks(pid) for pid in pids]
    return None if None in ticks else sum(t for t in ticks if t is not None)


class CpuMeter:
    """CPU time of each server process from the meter's creation on, per request in µs."""

    def __init__(self, processes: Sequence[tuple[str, int]]) -> None:
        self.processes = processes
        self.start = self._read()

    def _read(self) -> dict[str, int] | None:
        ticks: dict[str, int] = {}
        for name, pid in self.processes:
            value = _process_ticks(pid)
            if value is None:
                return None
            ticks[name] = value
        return ticks

    def per_request_us(self, requests: int) -> dict[str, float] | None:
        end = self._read()
        if self.start is None or end is None or requests <= 0 or sys.platform == "win32":
            return None
        us_per_tick = 1e6 / os.sysconf("SC_CLK_TCK")
        return {
            name: round((end[name] - self.start[name]) * us_per_tick / requests, 1) for name in end
        }


def _system_ticks() -> tuple[int, int] | None:
    """(user + nice + system, steal) clock ticks of the whole machine so far, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
    except OSError:
        return None
    ticks = [int(v) for v in first.split()[1:]]
    return ticks[0] + ticks[1] + ticks[2], ticks[7] if len(ticks) > 7 else 0


class MachineMeter:
    """Measures the CPU that processes other than ours (and the hypervisor) took meanwhile."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = (os.getpid(), *pids)
        self.start = time.perf_counter()
        self.system = _system_ticks()
        self.own = _cpu_ticks(self.pids)

    def result(self) -> MachineLoad | None:
        system, own = _system_ticks(), _cpu_ticks(self.pids)
        if self.system is None or system is None or self.own is None or own is None:
            return None
        ticks = os.sysconf("SC_CLK_TCK") * (time.perf_counter() - self.start)
        busy = system[0] - self.system[0] - (own - self.own)
        steal = system[1] - self.system[1]
        return MachineLoad(round(max(0, busy) / ticks, 2), round(steal / ticks, 2))


async def settle(pids: Sequence[int]) -> None:
    """Wait (at most SETTLE_MAX_S) until the servers are nearly idle: no backlog between runs."""
    window = SETTLE_WINDOW_S
    idle_ticks = IDLE_SHARE * window * os.sysconf("SC_CLK_TCK") if sys.platform != "win32" else 0
    deadline = time.perf_counter() + SETTLE_MAX_S
    before = _cpu_ticks(pids)
    while True:
        await asyncio.sleep(window)
        after = _cpu_ticks(pids)
        if before is None or after is None or after - before <= idle_ticks:
            return
        if time.perf_counter() > deadline:
            err.print(f"  servers still busy after {SETTLE_MAX_S:g} s; going on")
            return
        before = after
