"""Section 1c: instructions per request, counted by valgrind's callgrind, bare and guarded.

A count of instructions does not move with the machine's load, so this figure can be compared
across runs where the CPU-time figures of section 1 drift. Each variant of section 1's
Starlette app (``apps.build``), and each layer of section 1d (``breakdown.build``), runs twice in
a child process under callgrind, with ``SHORT`` and ``LONG`` requests after the same warm-up;
the difference over ``LONG - SHORT`` requests is what one request costs, start-up cancelled
out. Threads are counted separately (``--separate-threads=yes``): the serving thread (the one
that runs the event loop) and the background threads (the guard's writers) each have a figure,
each held to its target for the guarded decision with the signed log. Callgrind slows the
process about fifty times, so writers that batch by time (the async audit log) see smaller
batches than at full speed: for them the count is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import apps
from benchmarks.asgi_driver import Driver, http_scope
from benchmarks.budget import Budget
from benchmarks.child import ROOT
from benchmarks.measure import Figure, Sample, Target, unavailable

__all__ = ["Figure", "figures", "run"]

SECTION = "instructions"
VARIANTS: tuple[str, ...] = ("bare", "least", "guarded-null", "guarded")
PARTS: tuple[tuple[str, str, str], ...] = (
    ("middleware", "bare", "the pure ASGI middleware and the person's routes"),
    ("decorator", "middleware", "the decorator, explain() and a stand-in gate"),
    ("begin", "decorator", "Gate.begin: subject, consent, verdict"),
    ("finish", "decorator", "Gate.finish: explanation and record handed to the writers, headers"),
    ("guarded-null", "gate", "the endpoint's Explanation model, built per request"),
    ("guarded", "guarded-null", "the signed log (async) instead of a NullSink"),
)
"""Section 1d's parts in instructions: (layer, the layer it stands beside, what differs)."""
LAYERS = ("middleware", "decorator", "begin", "finish", "gate")
SERVING_ADDED = Target(60_000, "max", on="delta", text="<= 60k instr added")
BACKGROUND_ADDED = Target(40_000, "max", on="delta", text="<= 40k instr added")
WARM_UP = 300
_TOTAL = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def run(budget: Budget) -> list[Figure]:
    """The guarded variants beside the bare app, in instructions per request, serving thread
    and background threads apart; then section 1d's parts (serving thread).

    Smoke mode runs each child once without callgrind (a callgrind run takes most of a minute)
    and reports the figures as unavailable.
    """
    short, long = 1_000, 3_000
    if budget.mode == "smoke":
        for variant in (*VARIANTS, *LAYERS):
            _run_child([], variant, 20)
        return _unavailable("smoke mode runs the children without callgrind")
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return _unavailable("valgrind is not installed (benchmarks/run installs it with apt)")
    counts = {v: _per_request(valgrind, v, short, long) for v in (*VARIANTS, *LAYERS)}
    return figures(counts, [short, long])


def figures(counts: dict[str, tuple[float, float]], requests: list[int]) -> list[Figure]:
    """The figures from per-request counts: (serving thread, background threads) by variant."""
    result: list[Figure] = []
    extra = {"requests": requests, "framework": "starlette"}
    for variant in VARIANTS[1:]:
        for thread, index, target in (
            ("serving thread", 0, SERVING_ADDED),
            ("background threads", 1, BACKGROUND_ADDED),
        ):
            result.append(
                Figure(
                    SECTION,
                    _name(variant, thread),
                    "instr/req",
                    subject_label=variant,
                    subject=Sample.of([counts[variant][index]]),
                    baseline_label="bare",
                    baseline=Sample.of([counts["bare"][index]]),
                    target=target if variant == "guarded" else None,
                    note="async durability; the endpoint explains itself the documented way",
                    extra=extra,
                )
            )
    for layer, below, what in PARTS:
        result.append(
            Figure(
                SECTION,
                f"starlette part, serving thread: {what}",
                "instr/req",
                subject_label=layer,
                subject=Sample.of([counts[layer][0]]),
                baseline_label=below,
                baseline=Sample.of([counts[below][0]]),
                extra=extra,
            )
        )
    return result


def _name(variant: str, thread: str) -> str:
    return f"callgrind starlette: {variant} decision, {thread}, instructions per request"


def _unavailable(why: str) -> list[Figure]:
    names = [_name(v, t) for v in VARIANTS[1:] for t in ("serving thread", "background threads")]
    names += [f"starlette part, serving thread: {what}" for *_, what in PARTS]
    return [unavailable(SECTION, name, "instr/req", why) for name in names]


def _per_request(valgrind: str, variant: str, short: int, long: int) -> tuple[float, float]:
    """Instructions per request: (serving thread, every other thread)."""
    (s0, b0), (s1, b1) = (_collected(valgrind, variant, n) for n in (short, long))
    return (s1 - s0) / (long - short), (b1 - b0) / (long - short)


def _collected(valgrind: str, variant: str, requests: int) -> tuple[int, int]:
    """Instructions of the serving thread (the process's first) and of all the others."""
    with tempfile.TemporaryDirectory(prefix="kzai-callgrind-") as directory:
        out = Path(directory) / "callgrind.out"
        _run_child(
            [
                valgrind,
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
            ],
            variant,
            requests,
        )
        per_thread: dict[int, int] = {}
        for path in Path(directory).glob("callgrind.out-*"):  # one file per thread
            found = _TOTAL.findall(path.read_text(errors="replace"))
            if not found:
                raise RuntimeError(f"callgrind wrote no total in {path.name} for {variant}")
            per_thread[int(path.name.rsplit("-", 1)[1])] = int(found[0])
    if 1 not in per_thread:
        raise RuntimeError(f"callgrind wrote no count of the serving thread for {variant}")
    serving = per_thread.pop(1)
    return serving, sum(per_thread.values())


def _run_child(prefix: list[str], variant: str, requests: int) -> str:
    """Run the child (under ``prefix``, e.g. valgrind); returns what it wrote to stderr."""
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "benchmarks.instructions", variant, str(requests)],
        cwd=ROOT,
        # one hash seed for every child: set and dict layouts, and so the counts, repeat
        env={**os.environ, "PYTHONHASHSEED": "0"},
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
    parser.add_argument("variant", choices=(*VARIANTS, *LAYERS))
    parser.add_argument("requests", type=int)
    args = parser.parse_args()
    if args.variant in LAYERS:
        from benchmarks import breakdown

        built = breakdown.build(args.variant)
    else:
        built = apps.build("starlette", args.variant)  # type: ignore[arg-type]
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
