"""Section 1c: instructions per request, counted by valgrind's callgrind, bare and guarded.

A count of instructions does not move with the machine's load, so this figure can be compared
across runs where the CPU-time figures of section 1 drift. Each variant of section 1's
Starlette app (``apps.build``) runs twice in a child process under callgrind, with ``SHORT`` and
``LONG`` requests after the same warm-up; the difference over ``LONG - SHORT`` requests is
what one request costs, start-up cancelled out. Every thread is counted (callgrind serialises
them), so the guard's background writers are included. Callgrind slows the process about fifty
times, so writers that batch by time (stored explanations, the async audit log) see smaller
batches than at full speed: for them the count is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys

from benchmarks import apps
from benchmarks.asgi_driver import Driver, http_scope
from benchmarks.budget import Budget
from benchmarks.child import ROOT
from benchmarks.measure import Figure, Sample, unavailable

SECTION = "instructions"
VARIANTS: tuple[apps.Variant, ...] = ("bare", "least", "guarded-null", "guarded")
WARM_UP = 300
_COLLECTED = re.compile(r"Collected : (\d+)")


def run(budget: Budget) -> list[Figure]:
    """The guarded variants beside the bare app, in instructions per request.

    Smoke mode runs each child once without callgrind (a callgrind run takes most of a minute)
    and reports the figures as unavailable.
    """
    short, long = 1_000, 3_000
    names = {v: f"callgrind starlette: {v} decision, instructions per request" for v in VARIANTS}
    if budget.mode == "smoke":
        for variant in VARIANTS:
            _run_child([], variant, 20)
        return _unavailable(names, "smoke mode runs the children without callgrind")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return _unavailable(names, "valgrind is not installed")
    counts = {v: _per_request(valgrind, v, short, long) for v in VARIANTS}
    bare = Sample.of([counts["bare"]])
    return [
        Figure(
            SECTION,
            names[variant],
            "instr/req",
            subject_label=variant,
            subject=Sample.of([counts[variant]]),
            baseline_label="bare",
            baseline=bare,
            note="every thread; time-batched writers counted at callgrind's pace (upper bound)",
            extra={"requests": [short, long], "framework": "starlette"},
        )
        for variant in VARIANTS[1:]
    ]


def _unavailable(names: dict[str, str], why: str) -> list[Figure]:
    return [unavailable(SECTION, names[v], "instr/req", why) for v in VARIANTS[1:]]


def _per_request(valgrind: str, variant: str, short: int, long: int) -> float:
    totals = [_collected(valgrind, variant, n) for n in (short, long)]
    return (totals[1] - totals[0]) / (long - short)


def _collected(valgrind: str, variant: str, requests: int) -> int:
    stderr = _run_child(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"], variant, requests
    )
    found = _COLLECTED.findall(stderr)
    if not found:
        raise RuntimeError(f"callgrind printed no count for {variant}: {stderr[-400:]}")
    return int(found[-1])


def _run_child(prefix: list[str], variant: str, requests: int) -> str:
    """Run the child (under ``prefix``, e.g. valgrind); returns what it wrote to stderr."""
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "benchmarks.instructions", variant, str(requests)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"the {variant} child failed ({proc.returncode}): {tail}")
    return proc.stderr


def main() -> None:
    """In the child: warm up, then serve ``requests`` requests and let the writers finish."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("requests", type=int)
    args = parser.parse_args()
    built = apps.build("starlette", args.variant)
    runner = asyncio.Runner()
    try:
        driver = Driver(built.app, http_scope(apps.PATH, apps.HEADERS))
        runner.run(driver.check())
        runner.run(driver.run(WARM_UP))
        built.settle()
        runner.run(driver.run(args.requests))
        built.settle()
    finally:
        built.close()
        runner.close()


if __name__ == "__main__":
    main()
