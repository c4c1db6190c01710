"""Section 4: how append, verify and prove scale from 10^4 to 10^7 records, and peak memory.

Each size builds one log (async durability) and times the append, a full verification, and
inclusion proofs for records spread over the log: the library's public proof bundle
(``kzai_guard.audit.proof.inclusion_bundle`` by sequence number, what ``kzai-guard prove --seq``
writes: the line found by a binary search in its segment, the newest checkpoint read from the
tail of its file, the path read from the stored tree, the bundle checked) and the bare RFC 9162
audit path read from the stored tree. Every point stands beside the smallest
size measured in the same run, so the ratio shows the slope: about 1x for append and verify
rates (linear total work), a slowly rising time for proofs (O(log n) hashes read).

Peak RSS after a million guarded decisions (section 1's app, in a child process) stands
beside the bare app driven the same number of times.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from benchmarks import apps, signed_log
from benchmarks.audit_log import POOL, Workspace, build_log
from benchmarks.budget import Budget
from benchmarks.child import ChildFailed, run_child
from benchmarks.measure import Figure, Sample, Target, unavailable
from benchmarks.records import records

SECTION = "growth"
PROOFS = 200
BUNDLES = 20
RSS_GROWTH = Target(16.0, "max", text="<= 16 MiB growth (bounded)")


OPS: dict[str, tuple[str, str]] = {
    "append": ("rec/s", "signed log, async"),
    "verify": ("rec/s", "verify_log"),
    "prove": ("us/proof", "inclusion_bundle"),
    "path": ("us/proof", "audit path from the stored tree"),
}
"""Each measured operation: its unit and the label of what performs it."""


def run(budget: Budget, core: int | None) -> list[Figure]:
    figures = _log_growth(budget)
    figures += _rss(budget, core)
    return figures


def _reps(size: int, budget: Budget) -> int:
    if budget.mode == "smoke" or size >= 1_000_000:
        return 1
    return 3


def _missing() -> dict[str, str]:
    why = {
        "append": signed_log.missing(),
        "verify": signed_log.verify_missing(),
        "prove": signed_log.bundle_missing(),
        "path": signed_log.prove_missing(),
    }
    return {op: reason for op, reason in why.items() if reason}


def _log_growth(budget: Budget) -> list[Figure]:
    sizes = budget.growth_sizes
    missing = _missing()
    if "append" in missing:
        missing = dict.fromkeys(OPS, missing["append"])
    values: dict[tuple[str, int], list[float]] = {}
    if "append" not in missing:
        values = _measure(sizes, budget, missing)
    return _figures(sizes, values, missing, budget)


def _measure(
    sizes: tuple[int, ...], budget: Budget, missing: dict[str, str]
) -> dict[tuple[str, int], list[float]]:
    pool = records(min(POOL, sizes[0]))
    work = Workspace()
    values: dict[tuple[str, int], list[float]] = {}
    try:
        for size in sizes:
            for _ in range(_reps(size, budget)):
                path = work.fresh()
                start = time.perf_counter()
                build_log(path, pool, size)
                values.setdefault(("append", size), []).append(size / (time.perf_counter() - start))
                if "verify" not in missing:
                    start = time.perf_counter()
                    signed_log.verify(path)
                    values.setdefault(("verify", size), []).append(
                        size / (time.perf_counter() - start)
                    )
                if "prove" not in missing:
                    values.setdefault(("prove", size), []).append(_bundles(path, size))
                if "path" not in missing:
                    values.setdefault(("path", size), []).append(_paths(path, size))
                work.drop(path)
    finally:
        work.close()
    return values


def _indices(size: int, count: int) -> list[int]:
    rng = random.Random(size)
    return [rng.randrange(size) for _ in range(count)]


def _bundles(path: Path, size: int) -> float:
    """Microseconds per inclusion-proof bundle, the library's public proof."""
    indices = _indices(size, BUNDLES)
    signed_log.check_bundle(signed_log.inclusion_bundle(path, indices[0]))
    start = time.perf_counter()
    for index in indices:
        signed_log.inclusion_bundle(path, index)
    return (time.perf_counter() - start) / len(indices) * 1e6


def _paths(path: Path, size: int) -> float:
    """Microseconds per RFC 9162 audit path read from the stored tree."""
    indices = _indices(size, PROOFS)
    prover = signed_log.Prover(path)
    try:
        if prover.size != size:
            raise RuntimeError(f"the tree holds {prover.size} leaves, not {size}")
        prover.check(indices[0])
        start = time.perf_counter()
        for index in indices:
            prover.prove(index)
        return (time.perf_counter() - start) / len(indices) * 1e6
    finally:
        prover.close()


def _figures(
    sizes: tuple[int, ...],
    values: dict[tuple[str, int], list[float]],
    missing: dict[str, str],
    budget: Budget,
) -> list[Figure]:
    skipped = (
        "" if 10_000_000 in sizes else "10^7 records: run with --long (not measured in this mode)"
    )
    first = sizes[0]
    figures: list[Figure] = []
    for size in sizes:
        note = skipped if size == sizes[-1] else ""
        for op, (unit, label) in OPS.items():
            name = f"{op} at {size:,} records"
            extra = {"size": size, "op": op}
            if op in missing:
                figures.append(unavailable(SECTION, name, unit, missing[op], extra=extra))
                continue
            figures.append(
                Figure(
                    SECTION,
                    name,
                    unit,
                    label,
                    Sample.of(values[op, size]),
                    f"{first:,} records",
                    Sample.of(values[op, first]),
                    note=note,
                    extra=extra,
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
