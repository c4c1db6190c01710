"""Peak memory over many decisions, in a child process of its own.

``python -m benchmarks.rss --variant guarded --decisions 1000000`` drives the Starlette app
through the in-process ASGI driver and reads the peak resident set size (``VmHWM`` from
/proc/self/status, else ``ru_maxrss``) and the current one (``VmRSS``) after 1%, 10% and 100% of
the decisions, each time once the audit log has written what it was handed. The guard keeps its
store in a SQLite file, as a service would: the ``memory://`` store holds every stored
explanation in memory by design, so it grows with the number of decisions. A bounded guard
adds a constant, not a slope: the peak after 10% and after 100% should be about the same.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
from pathlib import Path

from benchmarks import apps
from benchmarks.asgi_driver import Driver, http_scope
from benchmarks.child import emit
from benchmarks.machine import pin


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB."""
    peak = _status_mb("VmHWM")
    if peak is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak


def current_rss_mb() -> float:
    """Resident set size now, in MiB (the peak where /proc is missing)."""
    now = _status_mb("VmRSS")
    return peak_rss_mb() if now is None else now


def measure(variant: apps.Variant, decisions: int, store: str) -> dict[str, object]:
    built = apps.build("starlette", variant, store=store)
    driver = Driver(built.app, http_scope(apps.PATH, apps.HEADERS))
    marks = sorted({max(1, decisions // 100), max(1, decisions // 10), decisions})
    checkpoints: dict[str, float] = {}
    current: dict[str, float] = {}
    done = 0
    chunk = 10_000
    try:
        with asyncio.Runner() as runner:
            runner.run(driver.check())
            checkpoints["0"] = peak_rss_mb()
            current["0"] = current_rss_mb()
            for mark in marks:
                while done < mark:
                    step = min(chunk, mark - done)
                    runner.run(driver.run(step))
                    done += step
                built.settle()
                checkpoints[str(mark)] = peak_rss_mb()
                current[str(mark)] = current_rss_mb()
    finally:
        built.close()
    return {
        "variant": variant,
        "decisions": decisions,
        "peak_mb": checkpoints,
        "rss_mb": current,
        "audit": built.audit_label,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=["bare", "guarded"], required=True)
    parser.add_argument("--decisions", type=int, required=True)
    parser.add_argument("--core", type=int, default=None)
    args = parser.parse_args()
    pin(args.core)
    with tempfile.TemporaryDirectory(prefix="kzai-bench-rss-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'store.db'}"
        answer = measure(args.variant, args.decisions, store)
    answer["store"] = "sqlite file"
    emit(answer)


if __name__ == "__main__":
    main()
