"""Section 2: the signed audit log beside ai-audit-trail and beside the physical floor.

- append throughput, async durability: the log against ai-audit-trail (target: at least
  100,000 records/s, and at least 5x the rival), against the floor (encode + two hashes), and
  against itself with personal fields in clear (what per-subject sealing costs);
- append in sync durability: one writer waiting for each record beside a plain write+fsync per
  record, and writers keeping 64 records in flight beside a bare group-commit writer
  (:mod:`benchmarks.group_commit`);
- sync latency at fixed rates (open loop: latency counts from the scheduled send time), beside
  the bare group-commit writer paced the same way (target at 1,000/s: p99 at most 2 ms), and
  the same with personal fields in clear;
- verification throughput against ai-audit-trail's verifier and the floor (target: at least
  300,000 records/s);
- the line encoder alone, sealed: the C encoder against the Python one it stands in for (the
  same bytes; ``kzai_guard.audit.lines``).

Each repetition writes into a fresh directory; the repetitions of the log and of its baseline
are interleaved.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from benchmarks import rival, signed_log
from benchmarks.budget import Budget
from benchmarks.floor import Floor
from benchmarks.group_commit import GroupCommitFile
from benchmarks.measure import Figure, Sample, Target, percentile, rotated, unavailable
from benchmarks.records import records

SECTION = "audit"
APPEND_RATE = Target(100_000, "min", text=">= 100,000 rec/s")
APPEND_VS_RIVAL = Target(5.0, "min", on="ratio", text=">= 5x ai-audit-trail")
VERIFY_RATE = Target(300_000, "min", text=">= 300,000 rec/s")
SYNC_P99_US = Target(2_000, "max", text="p99 <= 2 ms at 1,000/s")
POOL = 10_000
SYNC_DEPTH = 64
PAYLOAD = b"x" * 559 + b"\n"
"""What the durable-append floor writes per record: as many bytes as a log line."""


class Workspace:
    """Fresh directories for the logs, all removed at the end."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kzai-bench-log-"))
        self._n = 0

    def fresh(self) -> Path:
        self._n += 1
        path = self.root / f"log-{self._n:04d}"
        return path

    def drop(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def run(budget: Budget, floor: Floor) -> list[Figure]:
    why = signed_log.missing()
    rival_why = rival.missing()
    if why:
        return _all_unavailable(why)
    work = Workspace()
    try:
        return _measure(budget, floor, work, rival_why)
    finally:
        work.close()


def _all_unavailable(why: str) -> list[Figure]:
    return [
        unavailable(SECTION, "append, async durability", "rec/s", why, target=APPEND_RATE),
        unavailable(
            SECTION,
            "append, async durability vs ai-audit-trail",
            "rec/s",
            why,
            target=APPEND_VS_RIVAL,
        ),
        unavailable(
            SECTION, "append, async durability, personal fields sealed vs in clear", "rec/s", why
        ),
        unavailable(SECTION, "append, sync durability, one writer", "rec/s", why),
        unavailable(SECTION, f"append, sync durability, {SYNC_DEPTH} in flight", "rec/s", why),
        unavailable(SECTION, "sync latency p50 at 1,000/s", "us", why),
        unavailable(SECTION, "sync latency p99 at 1,000/s", "us", why, target=SYNC_P99_US),
        unavailable(SECTION, "sync latency p99 at 1,000/s, personal fields in clear", "us", why),
        unavailable(SECTION, "verify", "rec/s", why, target=VERIFY_RATE),
        unavailable(SECTION, "verify vs ai-audit-trail", "rec/s", why),
    ]


def _measure(budget: Budget, floor: Floor, work: Workspace, rival_why: str | None) -> list[Figure]:
    pool = records(min(POOL, budget.log_records))
    n = budget.log_records
    figures: list[Figure] = []

    def log_append(seal: bool = True) -> float:
        path = work.fresh()
        start = time.perf_counter()
        log = signed_log.open_log(path, "async", seal=seal)
        signed_log.append_all(log, pool, n)
        log.close()
        rate = n / (time.perf_counter() - start)
        work.drop(path)
        return rate

    def rival_append() -> float:
        store = rival.Rival(budget.rival_records)
        return budget.rival_records / store.append(budget.rival_records)

    runs: dict[str, Callable[[], float]] = {
        "log": log_append,
        "clear": lambda: log_append(seal=False),
    }
    if rival_why is None:
        runs["rival"] = rival_append
    rates = rotated(runs, budget.rounds)
    log_rate = Sample.of(rates["log"])
    floor_rate = Sample.of([1e6 / floor.append_us])
    note = "open + write every record + close (flushed, checkpoint signed)"
    figures.append(
        Figure(
            SECTION,
            "append, async durability",
            "rec/s",
            "signed log",
            log_rate,
            "floor: encode + 2x SHA-256",
            floor_rate,
            APPEND_RATE,
            note,
        )
    )
    figures.append(
        Figure(
            SECTION,
            "append, async durability, personal fields sealed vs in clear",
            "rec/s",
            "sealed (default)",
            log_rate,
            "seal_personal_fields=False",
            Sample.of(rates["clear"]),
            note="what per-subject encryption (crypto-shredding) costs on append",
        )
    )
    if rival_why is None:
        figures.append(
            Figure(
                SECTION,
                "append, async durability vs ai-audit-trail",
                "rec/s",
                "signed log",
                log_rate,
                "ai-audit-trail emit",
                Sample.of(rates["rival"]),
                APPEND_VS_RIVAL,
                "ai-audit-trail keeps receipts in memory only and signs each one",
            )
        )
    else:
        figures.append(
            unavailable(
                SECTION,
                "append, async durability vs ai-audit-trail",
                "rec/s",
                rival_why,
                target=APPEND_VS_RIVAL,
            )
        )

    figures += _sync(budget, floor, work, pool)
    figures += _verify(budget, floor, work, pool, rival_why)
    figures += _encoding(budget, pool)
    return figures


ENCODING = "line encoding, sealed: C encoder vs Python encoder"


def _encoding(budget: Budget, pool: list[Any]) -> list[Figure]:
    """Records per second through ``LineEncoder.encode`` alone, C and Python, interleaved."""
    from kzai_guard.audit.leaf import DEFAULT_FORMAT
    from kzai_guard.audit.lines import NATIVE, LineEncoder
    from kzai_guard.audit.shredding import MemorySubjectKeys, Sealer

    if not NATIVE:
        return [unavailable(SECTION, ENCODING, "rec/s", "the C line encoder was not built")]
    n = budget.log_records
    chunk = 256

    def encoding(native: bool) -> Callable[[], float]:
        # the leaves of a log created now
        encoder = LineEncoder(
            Sealer(MemorySubjectKeys()), native=native, leaf_format=DEFAULT_FORMAT
        )
        # the pool's subject keys are made before any timing
        for start in range(0, len(pool), chunk):
            encoder.encode(pool[start : start + chunk], start, b"0" * 64, 1 << 40)

        def once() -> float:
            began = time.process_time()
            done = 0
            while done < n:
                start = done % len(pool)
                batch = pool[start : start + min(chunk, n - done)]
                encoder.encode(batch, done, b"0" * 64, 1 << 40)
                done += len(batch)
            return n / (time.process_time() - began)

        return once

    rates = rotated({"c": encoding(True), "python": encoding(False)}, budget.rounds)
    return [
        Figure(
            SECTION,
            ENCODING,
            "rec/s",
            "C encoder (default)",
            Sample.of(rates["c"]),
            "Python encoder",
            Sample.of(rates["python"]),
            note="LineEncoder.encode alone, 256 records a call, process CPU time; same bytes",
        )
    ]


def _sync(budget: Budget, floor: Floor, work: Workspace, pool: list[Any]) -> list[Figure]:
    from benchmarks.floor import fsync_latencies

    figures: list[Figure] = []
    each = max(5, budget.fsyncs)
    batched = max(SYNC_DEPTH * 2, budget.fsyncs * 10)

    def log_each() -> float:
        path = work.fresh()
        log = signed_log.open_log(path, "sync")
        signed_log.append_sync_each(log, pool, 3)
        start = time.perf_counter()
        signed_log.append_sync_each(log, pool, each)
        rate = each / (time.perf_counter() - start)
        log.close()
        work.drop(path)
        return rate

    def log_batched() -> float:
        path = work.fresh()
        log = signed_log.open_log(path, "sync")
        signed_log.append_sync_each(log, pool, 3)
        start = time.perf_counter()
        signed_log.append_sync_batched(log, pool, batched, SYNC_DEPTH)
        rate = batched / (time.perf_counter() - start)
        log.close()
        work.drop(path)
        return rate

    def raw() -> float:
        latencies = fsync_latencies(each, directory=str(work.root))
        return each / (sum(latencies) / 1e6)

    def group() -> float:
        target = GroupCommitFile(work.root / "group.raw")
        futures: list[Future[None]] = []
        start = time.perf_counter()
        for _ in range(batched):
            futures.append(target.write(PAYLOAD))
            if len(futures) >= SYNC_DEPTH:
                for future in futures:
                    future.result()
                futures.clear()
        for future in futures:
            future.result()
        rate = batched / (time.perf_counter() - start)
        target.close()
        return rate

    rates = rotated(
        {"each": log_each, "batched": log_batched, "raw": raw, "group": group},
        max(2, budget.rounds // 3),
    )
    base = Sample.of(rates["raw"])
    figures.append(
        Figure(
            SECTION,
            "append, sync durability, one writer",
            "rec/s",
            "signed log",
            Sample.of(rates["each"]),
            "write+fsync per record",
            base,
            note="each write waited on until durable",
        )
    )
    figures.append(
        Figure(
            SECTION,
            f"append, sync durability, {SYNC_DEPTH} in flight",
            "rec/s",
            "signed log",
            Sample.of(rates["batched"]),
            "group-commit write+fsync",
            Sample.of(rates["group"]),
            note="one fsync serves every record queued while the last one ran",
        )
    )
    for rate in budget.rates:
        figures += _paced(budget, work, pool, rate)
    return figures


def _paced_run(rate: int, seconds: float, submit: Callable[[], Any]) -> list[float]:
    """Open-loop: one operation every ``1/rate`` s; latency from the scheduled time to done."""
    count = max(5, int(rate * seconds))
    interval = 1.0 / rate
    done_at: list[float] = [0.0] * count
    scheduled: list[float] = [0.0] * count
    finished = threading.Semaphore(0)
    start = time.perf_counter() + 0.01
    for i in range(count):
        due = start + i * interval
        scheduled[i] = due
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        result = submit()

        def mark(_: Any, i: int = i) -> None:
            done_at[i] = time.perf_counter()
            finished.release()

        if isinstance(result, Future):
            result.add_done_callback(mark)
        else:
            mark(None)
    for _ in range(count):
        if not finished.acquire(timeout=60):
            raise RuntimeError(f"a paced write did not complete within 60 s (rate {rate}/s)")
    return sorted((d - s) * 1e6 for d, s in zip(done_at, scheduled, strict=True))


def _paced(budget: Budget, work: Workspace, pool: list[Any], rate: int) -> list[Figure]:
    sealed_path, clear_path = work.fresh(), work.fresh()
    sealed = signed_log.open_log(sealed_path, "sync")
    clear = signed_log.open_log(clear_path, "sync", seal=False)
    floor_file = GroupCommitFile(work.root / f"paced-{rate}.raw")
    counter = iter(range(1 << 62))
    submits: dict[str, Callable[[], Any]] = {
        "log": lambda: sealed.write(pool[next(counter) % len(pool)]),
        "clear": lambda: clear.write(pool[next(counter) % len(pool)]),
        "raw": lambda: floor_file.write(PAYLOAD),
    }
    p50s: dict[str, list[float]] = {label: [] for label in submits}
    p99s: dict[str, list[float]] = {label: [] for label in submits}
    reps = max(2, budget.rounds // 5)
    seconds = budget.paced_seconds / reps * 2

    def paced(label: str) -> Callable[[], float]:
        def once() -> float:
            lat = _paced_run(rate, seconds, submits[label])
            p50s[label].append(percentile(lat, 0.5))
            p99s[label].append(percentile(lat, 0.99))
            return p50s[label][-1]

        return once

    try:
        rotated({label: paced(label) for label in submits}, reps)
    finally:
        sealed.close()
        clear.close()
        floor_file.close()
        work.drop(sealed_path)
        work.drop(clear_path)
    target = SYNC_P99_US if rate == 1_000 else None
    note = f"open loop, {reps} runs of {seconds:g} s; latency from scheduled send to durable"
    floor_label = "group-commit write+fsync"
    return [
        Figure(
            SECTION,
            f"sync latency p50 at {rate:,}/s",
            "us",
            "signed log",
            Sample.of(p50s["log"]),
            floor_label,
            Sample.of(p50s["raw"]),
            note=note,
        ),
        Figure(
            SECTION,
            f"sync latency p99 at {rate:,}/s",
            "us",
            "signed log",
            Sample.of(p99s["log"]),
            floor_label,
            Sample.of(p99s["raw"]),
            target,
        ),
        Figure(
            SECTION,
            f"sync latency p99 at {rate:,}/s, personal fields in clear",
            "us",
            "seal_personal_fields=False",
            Sample.of(p99s["clear"]),
            floor_label,
            Sample.of(p99s["raw"]),
            note=f"p50 {Sample.of(p50s['clear']).median:,.0f} us; without per-subject "
            "encryption keys, to show what sealing adds to durable latency",
        ),
    ]


def build_log(path: Path, pool: list[Any], n: int) -> None:
    log = signed_log.open_log(path, "async")
    signed_log.append_all(log, pool, n)
    log.close()


def _verify(
    budget: Budget, floor: Floor, work: Workspace, pool: list[Any], rival_why: str | None
) -> list[Figure]:
    why = signed_log.verify_missing()
    if why:
        return [
            unavailable(SECTION, "verify", "rec/s", why, target=VERIFY_RATE),
            unavailable(SECTION, "verify vs ai-audit-trail", "rec/s", why),
        ]
    n = budget.log_records
    path = work.fresh()
    build_log(path, pool, n)
    store = None
    if rival_why is None:
        store = rival.Rival(budget.rival_records)
        store.append(budget.rival_records)

    def log_verify() -> float:
        start = time.perf_counter()
        signed_log.verify(path)
        return n / (time.perf_counter() - start)

    runs: dict[str, Callable[[], float]] = {"log": log_verify}
    if store is not None:
        runs["rival"] = lambda: budget.rival_records / store.verify()
    rates = rotated(runs, budget.rounds)
    work.drop(path)
    log_rate = Sample.of(rates["log"])
    figures = [
        Figure(
            SECTION,
            "verify",
            "rec/s",
            "signed log",
            log_rate,
            "floor: decode + 2x SHA-256",
            Sample.of([1e6 / floor.verify_us]),
            VERIFY_RATE,
            "whole directory: chain, Merkle root, checkpoint signatures",
        )
    ]
    if store is not None:
        figures.append(
            Figure(
                SECTION,
                "verify vs ai-audit-trail",
                "rec/s",
                "signed log",
                log_rate,
                "ai-audit-trail verify_chain",
                Sample.of(rates["rival"]),
            )
        )
    else:
        figures.append(unavailable(SECTION, "verify vs ai-audit-trail", "rec/s", rival_why or ""))
    return figures
