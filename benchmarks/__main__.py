"""``python -m benchmarks``: run the suite, print the table, write the JSON (and the docs page).

::

    python -m benchmarks                 # default run, ~10-20 minutes on a quiet machine
    python -m benchmarks --smoke         # every section in seconds; CI runs it
    python -m benchmarks --long          # adds the 10^7-record growth point
    python -m benchmarks --write-docs    # also regenerate docs/benchmarks.md and the plot
    python -m benchmarks --only audit,growth

The exit status is non-zero only when a section raised an error; a missed target or a piece of
the library that is not there yet is reported in the table, never as a failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine, report
from benchmarks.budget import BUDGETS, Budget
from benchmarks.child import ROOT
from benchmarks.floor import Floor
from benchmarks.measure import Figure

RESULTS = ROOT / "benchmarks" / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny counts, seconds; for CI")
    mode.add_argument("--long", action="store_true", help="add the 10^7 growth point")
    parser.add_argument(
        "--only", default="", help="comma-separated sections: " + ",".join(report.SECTIONS)
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="regenerate docs/benchmarks.md and the growth plot from this run",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # On SIGTERM unwind normally, so child processes (servers, load generator) are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    budget = BUDGETS["smoke" if args.smoke else "long" if args.long else "default"]
    only = {s for s in args.only.split(",") if s}
    unknown = only - set(report.SECTIONS)
    if unknown:
        _parser().error(f"unknown sections: {', '.join(sorted(unknown))}")
    results = run(budget, only or set(report.SECTIONS), pin=not args.no_pin, command=_command(argv))
    report.write_json(results, args.output)
    print(report.terminal_table(results))
    print(f"\nResults written to {args.output}")
    if args.write_docs:
        from benchmarks import docs

        written = docs.write(results)
        print("Docs written: " + ", ".join(str(p) for p in written))
    errors = [name for name, s in results["sections"].items() if s["status"] == "error"]
    if errors:
        print(f"Sections that raised an error: {', '.join(errors)}", file=sys.stderr)
        return 1
    return 0


def _command(argv: list[str] | None) -> str:
    words = sys.argv[1:] if argv is None else argv
    return " ".join([".venv/bin/python -m benchmarks", *words])


def run(budget: Budget, sections: set[str], *, pin: bool, command: str) -> dict[str, Any]:
    described = machine.describe()
    cores = machine.allowed_cores()
    layout: dict[str, int | None] = (
        machine.layout(cores) if pin else {"bench": None, "server": None, "client": None}
    )
    pinned = machine.pin(layout["bench"])
    snapshot = machine.cpu_snapshot()
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": report.SCHEMA,
        "mode": budget.mode,
        "command": command,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": described,
        "pinning": {
            "requested": pin,
            "bench_core": pinned,
            "server_core": layout["server"],
            "client_core": layout["client"],
            "allowed_cores": cores,
        },
        "sections": {},
    }
    floor_holder: list[Floor] = []
    for name in report.SECTIONS:
        if name not in sections and not (name == "floor" and "audit" in sections):
            continue
        print(f"[{budget.mode}] {report.TITLES[name]} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"status": "ok", "figures": []}
        try:
            figures = _SECTIONS[name](budget, layout, floor_holder)
            entry["figures"] = [f.as_json() for f in figures]
        except Exception as exc:
            entry["status"] = "error"
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()
            print(entry["traceback"], file=sys.stderr)
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        results["sections"][name] = entry
    results["duration_s"] = round(time.perf_counter() - started, 2)
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["contention"] = machine.contention(
        snapshot, machine.cpu_snapshot(), described["cores"] or 1
    )
    results["summary"] = report.summary(results)
    return results


Runner = Callable[[Budget, dict[str, int | None], list[Floor]], list[Figure]]


def _floor(budget: Budget, layout: dict[str, int | None], holder: list[Floor]) -> list[Figure]:
    from benchmarks import floor

    figures, measured = floor.run(budget)
    holder.append(measured)
    return figures


def _hotpath(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import hotpath

    return hotpath.run(budget, layout["bench"])


def _breakdown(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import breakdown

    return breakdown.run(budget, layout["bench"])


def _instructions(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import instructions

    return instructions.run(budget)


def _served(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import served

    return served.run(budget, layout)


def _audit(budget: Budget, layout: dict[str, int | None], holder: list[Floor]) -> list[Figure]:
    from benchmarks import audit_log

    return audit_log.run(budget, holder[-1])


def _fleet(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import fleet

    with machine.unpinned():
        return fleet.run(budget)


def _fleet_pg(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import fleet_pg

    with machine.unpinned():
        return fleet_pg.run_budget(budget)


def _growth(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import growth

    return growth.run(budget, layout["bench"])


def _consent(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import consent

    return consent.run(budget)


def _siem(budget: Budget, layout: dict[str, int | None], _: list[Floor]) -> list[Figure]:
    from benchmarks import siem

    return siem.run(budget)


_SECTIONS: dict[str, Runner] = {
    "floor": _floor,
    "hotpath": _hotpath,
    "breakdown": _breakdown,
    "instructions": _instructions,
    "served": _served,
    "audit": _audit,
    "fleet": _fleet,
    "fleet-pg": _fleet_pg,
    "growth": _growth,
    "consent": _consent,
    "siem": _siem,
}

if __name__ == "__main__":
    sys.exit(main())
