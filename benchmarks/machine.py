"""The machine a run measured: CPU, cores, Python, library versions, and core pinning."""

from __future__ import annotations

import os
import platform
import sys
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
