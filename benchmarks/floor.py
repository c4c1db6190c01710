"""Section 3: the physical floor, what the hardware and the primitives cost on their own.

One SHA-256 of a ~500-byte record, one Ed25519 signature and one verification (the
``cryptography`` package, as the log uses), one fsync of a small appended write, one orjson
encoding of a record with sorted keys. The audit section sets each path beside the floor it
cannot beat; here each primitive stands beside a cheaper reference in the same run (SHA-256
beside a plain copy of the same bytes, fsync beside the same write without it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.budget import Budget
from benchmarks.measure import Figure, Sample, per_op_us, percentile, rotated
from benchmarks.records import decision_record

SECTION = "floor"


@dataclass(frozen=True)
class Floor:
    """Per-operation medians in microseconds, for the audit section's comparisons."""

    sha256_us: float
    encode_us: float
    decode_us: float
    fsync_p50_us: float
    fsync_p99_us: float

    @property
    def append_us(self) -> float:
        """Encode a record and hash it twice (leaf and chain)."""
        return self.encode_us + 2 * self.sha256_us

    @property
    def verify_us(self) -> float:
        """Decode a record line and recompute its two hashes."""
        return self.decode_us + 2 * self.sha256_us


def _loop(fn: Callable[[], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            fn()

    return run


def fsync_latencies(count: int, size: int = 560, directory: str | None = None) -> list[float]:
    """Microseconds of ``count`` appends of ``size`` bytes, each followed by fsync."""
    payload = b"x" * (size - 1) + b"\n"
    out: list[float] = []
    with tempfile.NamedTemporaryFile(dir=directory, prefix="kzai-bench-fsync-") as handle:
        fd = handle.fileno()
        for _ in range(count):
            start = time.perf_counter_ns()
            os.write(fd, payload)
            os.fsync(fd)
            out.append((time.perf_counter_ns() - start) / 1_000)
    return sorted(out)


def write_latencies(count: int, size: int = 560) -> list[float]:
    """The same appends without fsync: what the fsync figure stands beside."""
    payload = b"x" * (size - 1) + b"\n"
    out: list[float] = []
    with tempfile.NamedTemporaryFile(prefix="kzai-bench-write-") as handle:
        fd = handle.fileno()
        for _ in range(count):
            start = time.perf_counter_ns()
            os.write(fd, payload)
            out.append((time.perf_counter_ns() - start) / 1_000)
    return sorted(out)


def run(budget: Budget) -> tuple[list[Figure], Floor]:
    record = decision_record(1)
    as_dict = record.as_dict()
    line = orjson.dumps(as_dict, option=orjson.OPT_SORT_KEYS)
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    signature = key.sign(line)
    ops = budget.ops
    sign_ops = max(20, ops // 50)

    def timed(fn: Callable[[], object], n: int) -> Callable[[], float]:
        body = _loop(fn)
        return lambda: per_op_us(body, n)

    micro = rotated(
        {
            "copy": timed(lambda: bytes(bytearray(line)), ops),
            "sha256": timed(lambda: hashlib.sha256(line).digest(), ops),
            "dict": timed(lambda: dict(as_dict), ops),
            "encode": timed(lambda: orjson.dumps(as_dict, option=orjson.OPT_SORT_KEYS), ops),
            "decode": timed(lambda: orjson.loads(line), ops),
            "sign": timed(lambda: key.sign(line), sign_ops),
            "verify": timed(lambda: public.verify(signature, line), sign_ops),
        },
        budget.rounds,
    )
    s = {k: Sample.of(v) for k, v in micro.items()}
    fsyncs = fsync_latencies(budget.fsyncs)
    writes = write_latencies(budget.fsyncs)
    size = f"{len(line)}-byte record"
    figures = [
        Figure(
            SECTION,
            f"SHA-256 of a {size}",
            "us/op",
            "sha256",
            s["sha256"],
            "copy of the bytes",
            s["copy"],
        ),
        Figure(
            SECTION,
            f"orjson encode, sorted keys ({size})",
            "us/op",
            "orjson.dumps",
            s["encode"],
            "dict copy",
            s["dict"],
        ),
        Figure(
            SECTION,
            f"orjson decode ({size})",
            "us/op",
            "orjson.loads",
            s["decode"],
            "dict copy",
            s["dict"],
        ),
        Figure(SECTION, "Ed25519 signature", "us/op", "sign", s["sign"], "SHA-256", s["sha256"]),
        Figure(SECTION, "Ed25519 verification", "us/op", "verify", s["verify"], "sign", s["sign"]),
        Figure(
            SECTION,
            "fsync of a small append (p50)",
            "us/op",
            "write+fsync",
            Sample.of([percentile(fsyncs, 0.5)]),
            "write",
            Sample.of([percentile(writes, 0.5)]),
            note=f"{len(fsyncs)} appends in {tempfile.gettempdir()}",
        ),
        Figure(
            SECTION,
            "fsync of a small append (p99)",
            "us/op",
            "write+fsync",
            Sample.of([percentile(fsyncs, 0.99)]),
            "write",
            Sample.of([percentile(writes, 0.99)]),
        ),
    ]
    floor = Floor(
        sha256_us=s["sha256"].median,
        encode_us=s["encode"].median,
        decode_us=s["decode"].median,
        fsync_p50_us=percentile(fsyncs, 0.5),
        fsync_p99_us=percentile(fsyncs, 0.99),
    )
    return figures, floor
