"""The audit log in PostgreSQL, written by 1, 2 and 4 processes at once (many hosts' shape).

- append throughput, ``async`` durability: every process opens the log by URL
  (``AuditLog.open("postgresql://...")``, personal fields sealed under keys in the same
  database) and writes its share of realistic records as fast as it can; the figure is all
  records over the wall time from the common start to the last process's ``close()`` (which
  returns once everything is committed). Target with 4 processes: at least 20,000 records/s.
- sync latency at 1,000 decisions/s in all (open loop, each process sending ``1000 / P`` a
  second without waiting for earlier writes, as concurrent requests do): each record's latency
  counts from its scheduled time to its future resolving, i.e. to the synchronous commit of its
  batch. Reported as p50/p99 (no target set for PostgreSQL). Every record has a new subject, so
  every batch also makes keys: the costliest case.

Each measurement runs on a fresh database (random name, dropped afterwards) on the server at
``KZAI_BENCH_PG`` (default ``postgresql://127.0.0.1/test``, the admin database).

::

    python -m benchmarks.fleet_pg            # the figures, printed as a table
    python -m benchmarks.fleet_pg --smoke    # tiny counts, seconds
    python -m benchmarks --only fleet-pg     # as a section of the suite (results JSON, docs)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.budget import Budget
from benchmarks.child import ROOT
from benchmarks.measure import Figure, Sample, Target, percentile, unavailable

SECTION = "fleet-pg"
WRITERS = (1, 2, 4)
APPEND_RATE_4 = Target(20_000, "min", text=">= 20,000 rec/s with 4 processes")
SYNC_RATE = 1_000
ADMIN_URL = os.environ.get("KZAI_BENCH_PG", "postgresql://127.0.0.1/test")


def run_budget(budget: Budget) -> list[Figure]:
    """The section as a part of the suite (``python -m benchmarks --only fleet-pg``)."""
    if budget.mode == "smoke":
        return run(records=4_000, seconds=0.5, rounds=1)
    return run(
        records=2 * budget.log_records,
        seconds=max(0.5, budget.paced_seconds),
        rounds=max(1, budget.rounds // 5),
    )


def run(records: int = 200_000, seconds: float = 5.0, rounds: int = 3) -> list[Figure]:
    """Every figure of the section; unavailable ones when PostgreSQL or psycopg is missing."""
    try:
        import psycopg

        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:
        reason = f"PostgreSQL at {ADMIN_URL}: {exc}"
        return [
            unavailable(SECTION, f"async append, {n} processes", "rec/s", reason) for n in WRITERS
        ]
    figures = []
    with tempfile.TemporaryDirectory(prefix="kzai-bench-pg-") as scratch:
        key = _key(Path(scratch))
        rates: dict[int, list[float]] = {n: [] for n in WRITERS}
        for round_ in range(rounds):
            # interleaved, so that a change in the machine's load touches every count alike
            for n in WRITERS if round_ % 2 == 0 else tuple(reversed(WRITERS)):
                with _database() as url:
                    rates[n].append(_append_rate(url, key, n, records))
        one = Sample.of(rates[1])
        for n in WRITERS:
            figures.append(
                Figure(
                    SECTION,
                    f"async append, {n} process{'es' if n > 1 else ''}",
                    "rec/s",
                    f"{n} writer process{'es' if n > 1 else ''}",
                    Sample.of(rates[n]),
                    "1 writer process" if n > 1 else None,
                    one if n > 1 else None,
                    target=APPEND_RATE_4 if n == 4 else None,
                    note=f"{records:,} sealed records in all per round, each a new subject",
                )
            )
        for n in WRITERS:
            with _database() as url:
                latencies = _sync_latencies(url, key, n, seconds)
            ordered = sorted(latencies)
            p50, p99 = percentile(ordered, 0.50), percentile(ordered, 0.99)
            figures.append(
                Figure(
                    SECTION,
                    f"sync p99 at {SYNC_RATE:,}/s, {n} process{'es' if n > 1 else ''}",
                    "us",
                    "AuditLog on PostgreSQL",
                    Sample.of([p99]),
                    note=f"p50 {p50:.0f} us over {len(ordered):,} records",
                    extra={"p50_us": p50, "records": len(ordered)},
                )
            )
    return figures


# ---------------------------------------------------------------------------- the parent


def _key(directory: Path) -> Path:
    from kzai_guard.audit.keys import write_keypair

    private, _, _ = write_keypair(directory, "bench")
    return private


@contextmanager
def _database() -> Iterator[str]:
    import psycopg

    name = f"kzg_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _children(mode: str, url: str, key: Path, n: int, amount: str) -> list[dict[str, object]]:
    """Run ``n`` writer processes that start together; their JSON reports."""
    start = time.time() + 2.0 + 0.3 * n  # after every child has imported and opened the log
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "benchmarks.fleet_pg", "--child", mode, url, str(key)]
    processes = [
        subprocess.Popen(
            [*argv, str(i), str(n), amount, repr(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=900)
        if process.returncode != 0:
            raise RuntimeError(f"a writer process failed: {err.strip()[-2000:]}")
        reports.append(json.loads(out))
    return reports


def _append_rate(url: str, key: Path, n: int, records: int) -> float:
    reports = _children("append", url, key, n, str(records // n))
    start = min(float(r["start"]) for r in reports)  # type: ignore[arg-type]
    end = max(float(r["end"]) for r in reports)  # type: ignore[arg-type]
    total = sum(int(r["records"]) for r in reports)  # type: ignore[call-overload]
    return total / (end - start)


def _sync_latencies(url: str, key: Path, n: int, seconds: float) -> list[float]:
    reports = _children("sync", url, key, n, repr(seconds))
    return [float(x) for r in reports for x in r["latencies_us"]]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- a writer process


def _child(mode: str, url: str, key: str, index: int, n: int, amount: str, start: float) -> None:
    from benchmarks.audit_log import _paced_run
    from benchmarks.records import decision_record
    from kzai_guard.audit.keys import Signer
    from kzai_guard.audit.log import AuditLog, Durability

    signer = Signer.from_file(Path(key))
    durability: Durability = "async" if mode == "append" else "sync"
    # a writer that falls behind holds the producer back (backpressure) instead of refusing
    log = AuditLog.open(url, signer=signer, durability=durability, put_timeout=600.0)
    if mode == "append":
        count = int(amount)
        first = index * count
        pool = [decision_record(first + i) for i in range(count)]
        time.sleep(max(0.0, start - time.time()))
        began = time.time()
        write = log.write
        for record in pool:
            write(record)
        log.close()
        print(json.dumps({"start": began, "end": time.time(), "records": count}))
        return
    total = int(float(amount) * SYNC_RATE / n)
    pool = iter([decision_record(index * 10_000_000 + i) for i in range(total + 1)])
    future = log.write(next(pool))  # the writer thread started, the first batch done
    if future is not None:
        future.result(30)
    # each process sends its share of SYNC_RATE a second, without waiting for the last one
    time.sleep(max(0.0, start - time.time()))
    latencies = _paced_run(SYNC_RATE // n, float(amount), lambda: log.write(next(pool)))
    log.close()
    print(json.dumps({"latencies_us": latencies}))


def _table(figures: list[Figure]) -> str:
    lines = []
    for f in figures:
        value = "unavailable" if f.subject is None else f"{f.subject.median:,.0f} {f.unit}"
        spread = (
            ""
            if f.subject is None or f.subject.n < 2
            else (f" (min {f.subject.low:,.0f}, max {f.subject.high:,.0f})")
        )
        target = f" [{f.target.text}]" if f.target else ""
        lines.append(f"{f.status:5} {f.name}: {value}{spread}{target}  {f.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the section (or, with ``--child``, one writer process of it)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        mode, url, key, index, n, amount, start = args[1:8]
        _child(mode, url, key, int(index), int(n), amount, float(start))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_pg")
    parser.add_argument("--smoke", action="store_true", help="tiny counts, seconds")
    options = parser.parse_args(args)
    figures = run(records=4_000, seconds=0.5, rounds=1) if options.smoke else run()
    print(_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
