"""One log, several writer processes on one host: append throughput and sync latency.

For 1, 2 and 4 writer processes (forked with everything imported, records made before any
timing starts) sharing one log directory; each process writes decisions of its own (distinct
ids and subjects, every one a new subject in the async run), as the workers of one service do:

- **append, async**: every process opens the log, waits at a barrier, writes its share of the
  records and closes (everything flushed, the final checkpoint signed). The rate is all records
  over the time from the barrier to the last close, on the host's monotonic clock. Target at 4
  processes: at least 100,000 records/s.
- **sync p99 at 1,000/s**: open loop, 1,000 decisions/s in total (each process paces
  ``1000 / P``/s); a write's latency runs from its scheduled time until its future resolves
  (fsynced, group commit). Target: p99 at most 2 ms.

Run alone with ``.venv/bin/python -m benchmarks.fleet [--smoke]``: writes
``benchmarks/results/fleet.json`` and prints the table; ``python -m benchmarks --only fleet``
runs it as a section of the suite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.audit_log import _paced_run
from benchmarks.budget import BUDGETS, Budget
from benchmarks.measure import Figure, Sample, Target, percentile
from benchmarks.records import decision_record

SECTION = "fleet"
WRITERS = (1, 2, 4)
TOTAL_RATE = 1_000
ASYNC_RATE = Target(100_000, "min", text=">= 100,000 rec/s with 4 processes")
SYNC_P99_US = Target(2_000, "max", text="p99 <= 2 ms at 1,000/s")


def _async_writer(
    directory: str, first: int, count: int, barrier: Barrier, out: Connection
) -> None:
    from benchmarks import signed_log

    # each process its own decisions: distinct ids and subjects, as the workers of a service
    pool = [decision_record(first + i) for i in range(count)]
    log = signed_log.open_log(Path(directory), "async")
    barrier.wait()
    start = time.monotonic()
    signed_log.append_all(log, pool, count)
    log.close()
    out.send((start, time.monotonic()))
    out.close()


def _sync_writer(
    directory: str, first: int, rate: float, seconds: float, barrier: Barrier, out: Connection
) -> None:
    from benchmarks import signed_log

    pool = [decision_record(first + i) for i in range(1_000)]
    log = signed_log.open_log(Path(directory), "sync")
    log.write(pool[0]).result()  # the writer thread started, the first batch done
    barrier.wait()
    counter = iter(range(1, 1 << 62))

    def submit() -> Any:
        return log.write(pool[next(counter) % len(pool)])

    latencies = _paced_run(int(rate), seconds, submit) if rate >= 1 else []
    log.close()
    out.send(latencies)
    out.close()


def _run(target: Any, args_of: Any, writers: int) -> list[Any]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(writers)
    pipes = [context.Pipe(duplex=False) for _ in range(writers)]
    processes = [
        context.Process(target=target, args=(*args_of(n), barrier, pipes[n][1]))
        for n in range(writers)
    ]
    for process in processes:
        process.start()
    results = []
    for (receive, send), process in zip(pipes, processes, strict=True):
        send.close()
        results.append(receive.recv())
        process.join(120)
        if process.exitcode != 0:
            raise RuntimeError(f"a writer process exited with {process.exitcode}")
    return results


def _async_rate(root: Path, writers: int, total: int) -> float:
    directory = Path(tempfile.mkdtemp(dir=root))
    share = total // writers
    times = _run(_async_writer, lambda n: (str(directory), n * share, share), writers)
    shutil.rmtree(directory, ignore_errors=True)
    return share * writers / (max(e for _, e in times) - min(s for s, _ in times))


def _sync_p99(root: Path, writers: int, seconds: float) -> float:
    directory = Path(tempfile.mkdtemp(dir=root))
    rate = TOTAL_RATE / writers
    lists = _run(_sync_writer, lambda n: (str(directory), n * 1_000, rate, seconds), writers)
    shutil.rmtree(directory, ignore_errors=True)
    return percentile(sorted(x for lat in lists for x in lat), 0.99)


def run(budget: Budget) -> list[Figure]:
    """The fleet figures: async rate and sync p99, for 1, 2 and 4 writer processes."""
    root = Path(tempfile.mkdtemp(prefix="kzai-bench-fleet-"))
    reps = max(2, budget.rounds // 5)
    total = max(2_000, budget.log_records)
    seconds = max(0.2, budget.paced_seconds)
    rates: dict[int, list[float]] = {n: [] for n in WRITERS}
    p99s: dict[int, list[float]] = {n: [] for n in WRITERS}
    try:
        for rep in range(reps):
            order = WRITERS if rep % 2 == 0 else tuple(reversed(WRITERS))
            for writers in order:
                rates[writers].append(_async_rate(root, writers, total))
                p99s[writers].append(_sync_p99(root, writers, seconds))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures: list[Figure] = []
    one_rate, one_p99 = Sample.of(rates[1]), Sample.of(p99s[1])
    for writers in WRITERS:
        label = f"{writers} writer process{'es' if writers > 1 else ''}"
        figures.append(
            Figure(
                SECTION,
                f"append, async, {label}, one log",
                "rec/s",
                label,
                Sample.of(rates[writers]),
                "1 writer process" if writers > 1 else None,
                one_rate if writers > 1 else None,
                ASYNC_RATE if writers == 4 else None,
                f"{total:,} records in all, barrier to the last close (flushed, checkpoint signed)",
            )
        )
    for writers in WRITERS:
        label = f"{writers} writer process{'es' if writers > 1 else ''}"
        figures.append(
            Figure(
                SECTION,
                f"sync latency p99 at {TOTAL_RATE:,}/s in total, {label}, one log",
                "us",
                label,
                Sample.of(p99s[writers]),
                "1 writer process" if writers > 1 else None,
                one_p99 if writers > 1 else None,
                SYNC_P99_US,
                f"open loop, {TOTAL_RATE // writers:,}/s per process for {seconds:g} s; "
                "scheduled time to durable",
            )
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the fleet figures alone and write ``benchmarks/results/fleet.json``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet")
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for CI")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "fleet.json"
    )
    args = parser.parse_args(argv)
    budget = BUDGETS["smoke" if args.smoke else "default"]
    started = time.perf_counter()
    figures = run(budget)
    results: dict[str, Any] = {
        "schema": report.SCHEMA,
        "mode": budget.mode,
        "command": " ".join([".venv/bin/python -m benchmarks.fleet", *sys.argv[1:]]),
        "sections": {
            SECTION: {
                "status": "ok",
                "figures": [f.as_json() for f in figures],
                "seconds": round(time.perf_counter() - started, 2),
            }
        },
    }
    report.write_json(results, args.output)
    print(report.terminal_table(results))
    print(f"\nResults written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
