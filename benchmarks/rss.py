"""Peak memory over many decisions, in a child process of its own.

``python -m benchmarks.rss --variant guarded --decisions 1000000`` drives the Starlette app
through the in-process ASGI driver and reads the peak resident set size (``VmHWM`` from
/proc/self/status, else ``ru_maxrss``) after 1%, 10% and 100% of the decisions. A bounded guard
adds a constant, not a slope: the peak after 10% and after 100% should be about the same.
"""

from __future__ import annotations

import argparse
import asyncio
import resource

from benchmarks import apps
from benchmarks.asgi_driver import Driver, http_scope
from benchmarks.child import emit
from benchmarks.machine import pin


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(variant: apps.Variant, decisions: int) -> dict[str, object]:
    built = apps.build("starlette", variant)
    driver = Driver(built.app, http_scope(apps.PATH, apps.HEADERS))
    marks = sorted({max(1, decisions // 100), max(1, decisions // 10), decisions})
    checkpoints: dict[str, float] = {}
    done = 0
    chunk = 10_000
    try:
        with asyncio.Runner() as runner:
            runner.run(driver.check())
            checkpoints["0"] = peak_rss_mb()
            for mark in marks:
                while done < mark:
                    step = min(chunk, mark - done)
                    runner.run(driver.run(step))
                    done += step
                checkpoints[str(mark)] = peak_rss_mb()
    finally:
        built.close()
    return {"variant": variant, "decisions": decisions, "peak_mb": checkpoints,
            "audit": built.audit_label}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=["bare", "guarded"], required=True)
    parser.add_argument("--decisions", type=int, required=True)
    parser.add_argument("--core", type=int, default=None)
    args = parser.parse_args()
    pin(args.core)
    emit(measure(args.variant, args.decisions))


if __name__ == "__main__":
    main()
