"""Section 4: how append, verify and prove scale from 10^4 to 10^7 records, and peak memory.

Each size builds one log (async durability) and times the append, a full verification, and
inclusion proofs for records spread over the log. Every point stands beside the smallest
size measured in the same run, so the ratio shows the slope: about 1x for append and verify
rates (linear total work), a slowly rising time for proofs (O(log n) hashes read).

Peak RSS after a million guarded decisions (section 1's app, in a child process) stands
beside the bare app driven the same number of times.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from benchmarks import apps, signed_log
from benchmarks.audit_log import POOL, Workspace, build_log
from benchmarks.budget import Budget
from benchmarks.child import ChildFailed, run_child
from benchmarks.measure import Figure, Sample, Target, unavailable
from benchmarks.records import records

SECTION = "growth"
PROOFS = 200
RSS_GROWTH = Target(16.0, "max", text="<= 16 MiB growth (bounded)")


@dataclass
class Point:
    size: int
    append: list[float]
    verify: list[float] | None
    prove_us: list[float] | None


def run(budget: Budget, core: int | None) -> list[Figure]:
    figures = _log_growth(budget)
    figures += _rss(budget, core)
    return figures


def _reps(size: int, budget: Budget) -> int:
    if budget.mode == "smoke" or size >= 1_000_000:
        return 1
    return 3


def _log_growth(budget: Budget) -> list[Figure]:
    why = signed_log.missing()
    sizes = budget.growth_sizes
    if why:
        return [
            unavailable(SECTION, f"{op} at {size:,} records", unit, why)
            for size in sizes
            for op, unit in (("append", "rec/s"), ("verify", "rec/s"), ("prove", "us/proof"))
        ]
    verify_why = signed_log.verify_missing()
    prove_why = signed_log.prove_missing()
    pool = records(min(POOL, sizes[0]))
    work = Workspace()
    points: list[Point] = []
    try:
        for size in sizes:
            point = Point(size, [], [] if not verify_why else None, [] if not prove_why else None)
            for _ in range(_reps(size, budget)):
                path = work.fresh()
                start = time.perf_counter()
                build_log(path, pool, size)
                point.append.append(size / (time.perf_counter() - start))
                if point.verify is not None:
                    start = time.perf_counter()
                    signed_log.verify(path)
                    point.verify.append(size / (time.perf_counter() - start))
                if point.prove_us is not None:
                    point.prove_us.append(_prove(path, size))
                work.drop(path)
            points.append(point)
    finally:
        work.close()
    return _figures(points, budget, verify_why, prove_why)


def _prove(path: Any, size: int) -> float:
    rng = random.Random(size)
    indices = [rng.randrange(size) for _ in range(PROOFS)]
    prover = signed_log.Prover(path)
    try:
        if prover.size != size:
            raise RuntimeError(f"the tree holds {prover.size} leaves, not {size}")
        prover.check(indices[0])
        start = time.perf_counter()
        for index in indices:
            prover.prove(index)
        return (time.perf_counter() - start) / PROOFS * 1e6
    finally:
        prover.close()


def _figures(
    points: list[Point], budget: Budget, verify_why: str | None, prove_why: str | None
) -> list[Figure]:
    first = points[0]
    skipped = (
        ""
        if 10_000_000 in budget.growth_sizes
        else "10^7 records: run with --long (not measured in this mode)"
    )
    figures: list[Figure] = []
    for point in points:
        last = point is points[-1]
        note = skipped if last else ""
        label = f"{first.size:,} records"
        figures.append(
            Figure(
                SECTION,
                f"append at {point.size:,} records",
                "rec/s",
                "signed log",
                Sample.of(point.append),
                label,
                Sample.of(first.append),
                note=note,
                extra={"size": point.size, "op": "append"},
            )
        )
        if point.verify is not None and first.verify is not None:
            figures.append(
                Figure(
                    SECTION,
                    f"verify at {point.size:,} records",
                    "rec/s",
                    "signed log",
                    Sample.of(point.verify),
                    label,
                    Sample.of(first.verify),
                    note=note,
                    extra={"size": point.size, "op": "verify"},
                )
            )
        else:
            figures.append(
                unavailable(
                    SECTION,
                    f"verify at {point.size:,} records",
                    "rec/s",
                    verify_why or "",
                    extra={"size": point.size, "op": "verify"},
                )
            )
        if point.prove_us is not None and first.prove_us is not None:
            figures.append(
                Figure(
                    SECTION,
                    f"prove at {point.size:,} records",
                    "us/proof",
                    "inclusion proof",
                    Sample.of(point.prove_us),
                    label,
                    Sample.of(first.prove_us),
                    note=note,
                    extra={"size": point.size, "op": "prove", "proofs": PROOFS},
                )
            )
        else:
            figures.append(
                unavailable(
                    SECTION,
                    f"prove at {point.size:,} records",
                    "us/proof",
                    prove_why or "",
                    extra={"size": point.size, "op": "prove"},
                )
            )
    return figures


def _rss(budget: Budget, core: int | None) -> list[Figure]:
    n = budget.rss_decisions
    name = f"peak RSS after {n:,} guarded decisions"
    growth_name = "peak RSS growth over the last 90% of decisions"
    why = apps.guard_missing()
    args = ["--decisions", str(n)] + (["--core", str(core)] if core is not None else [])
    try:
        bare = run_child("benchmarks.rss", ["--variant", "bare", *args], timeout=3600)
    except ChildFailed as exc:
        raise RuntimeError(f"the bare app could not be driven: {exc}") from exc
    if why:
        return [
            unavailable(SECTION, name, "MiB", why),
            unavailable(SECTION, growth_name, "MiB", why, target=RSS_GROWTH),
        ]
    try:
        guarded = run_child("benchmarks.rss", ["--variant", "guarded", *args], timeout=3600)
    except ChildFailed as exc:
        return [
            unavailable(SECTION, name, "MiB", str(exc)),
            unavailable(SECTION, growth_name, "MiB", str(exc), target=RSS_GROWTH),
        ]
    tenth = str(max(1, n // 10))
    peak_b, peak_g = bare["peak_mb"], guarded["peak_mb"]
    return [
        Figure(
            SECTION,
            name,
            "MiB",
            "guarded",
            Sample.of([peak_g[str(n)]]),
            "bare",
            Sample.of([peak_b[str(n)]]),
            note=f"audit: {guarded['audit']}; store: {guarded.get('store', '?')}",
            extra={
                "guarded_peak": peak_g,
                "bare_peak": peak_b,
                "guarded_rss": guarded.get("rss_mb"),
                "bare_rss": bare.get("rss_mb"),
            },
        ),
        Figure(
            SECTION,
            growth_name,
            "MiB",
            "guarded",
            Sample.of([peak_g[str(n)] - peak_g[tenth]]),
            "bare",
            Sample.of([peak_b[str(n)] - peak_b[tenth]]),
            RSS_GROWTH,
            note=f"peak after {n:,} minus peak after {int(tenth):,}",
        ),
    ]
