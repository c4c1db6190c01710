"""The machine a run measured: CPU, cores, Python, library versions, core pinning, and how
much of the CPU other work took while the run went on."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

PACKAGES = (
    "kzai-guard",
    "starlette",
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "orjson",
    "cryptography",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "ai-audit-trail",
    "pynacl",
)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def allowed_cores() -> list[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


START_CORES = allowed_cores()
"""The cores this process could run on when the suite started, before any pinning."""


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Let this process's threads, and the processes it starts, run on every core it could run
    on at start for the block, then pin it back: the sections whose several writer processes
    must spread over the machine's cores, as a service's workers do, run in one."""
    before = allowed_cores()
    _set_affinity(set(START_CORES))
    try:
        yield
    finally:
        _set_affinity(set(before))


def _set_affinity(cores: set[int]) -> None:
    if not cores or not hasattr(os, "sched_setaffinity"):
        return
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    with contextlib.suppress(OSError):
        for tid in threads:
            os.sched_setaffinity(tid, cores)


def pin(core: int | None) -> int | None:
    """Pin every thread of this process to one core; returns the core, or None where pinning is
    impossible. Threads started later inherit the pinning."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    try:
        for tid in threads:
            os.sched_setaffinity(tid, {core})
    except OSError:
        return None
    return core


def layout(cores: list[int]) -> dict[str, int | None]:
    """Which core each role gets: the in-process measurements, the server, the load generator.

    With two cores or more the server and the load generator get different cores, so the
    load generator never takes time from the server it measures.
    """
    if not cores:
        return {"bench": None, "server": None, "client": None}
    last = cores[-1]
    first = cores[0]
    return {"bench": last, "server": last, "client": first if len(cores) > 1 else last}


def describe() -> dict[str, Any]:
    """Everything about the machine and the software that a reader needs to judge the figures."""
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "allowed_cores": allowed_cores(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "packages": versions,
    }


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU time of the whole machine and of this run's own processes, at one moment."""

    wall_s: float
    busy_s: float | None
    """Every core's non-idle time (user, nice, system, irq, softirq), or None without /proc."""
    steal_s: float | None
    """Time the hypervisor gave the virtual cores to other guests."""
    own_s: float
    """This process's CPU time and that of its children waited for (servers, load generator,
    callgrind runs)."""


def cpu_snapshot() -> CpuSnapshot:
    """Read the machine's CPU counters (``/proc/stat``) and this run's own CPU time."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_s = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    busy_s = steal_s = None
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        fields = []
    if fields and fields[0] == "cpu" and len(fields) >= 9:
        tick = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
        busy_s = (user + nice + system + irq + softirq) / tick
        steal_s = steal / tick
    return CpuSnapshot(time.perf_counter(), busy_s, steal_s, own_s)


def contention(before: CpuSnapshot, after: CpuSnapshot, cores: int) -> dict[str, float] | None:
    """What share of the machine's CPU (all cores, the run's wall time) went to work other than
    this run (``others``) and to other guests of the hypervisor (``steal``); None without
    ``/proc/stat``."""
    if before.busy_s is None or after.busy_s is None:
        return None
    if before.steal_s is None or after.steal_s is None:
        return None
    capacity = max(after.wall_s - before.wall_s, 1e-9) * max(cores, 1)
    others = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return {
        "others": round(max(others, 0.0) / capacity, 4),
        "steal": round(max(after.steal_s - before.steal_s, 0.0) / capacity, 4),
    }
