"""How much work each mode does: ``smoke`` (seconds, for CI), ``default``, ``long``.

Smoke mode runs every code path with tiny counts; its numbers mean nothing and it never judges
a timing. The default run is what the results table in ``docs/benchmarks.md`` comes from; long
mode adds the 10^7-record growth point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["smoke", "default", "long"]


@dataclass(frozen=True, slots=True)
class Budget:
    """Repetition counts and sizes for one mode."""

    mode: Mode
    rounds: int
    """Interleaved repetitions of every in-process comparison."""
    requests: int
    """Requests per repetition through the in-process ASGI driver."""
    server_rounds: int
    server_seconds: float
    """Measured seconds per repetition against the real server."""
    connections: int
    ops: int
    """Operations per repetition of a micro-benchmark (hashes, lookups, encodings)."""
    log_records: int
    """Records per repetition of audit log append and verify."""
    rival_records: int
    """Records per repetition of ai-audit-trail append and verify (it is much slower)."""
    paced_seconds: float
    """Seconds of sync appends at each fixed rate."""
    rates: tuple[int, ...]
    growth_sizes: tuple[int, ...]
    rss_decisions: int
    fsyncs: int


BUDGETS: dict[Mode, Budget] = {
    "smoke": Budget(
        mode="smoke",
        rounds=2,
        requests=50,
        server_rounds=1,
        server_seconds=0.05,
        connections=4,
        ops=200,
        log_records=500,
        rival_records=100,
        paced_seconds=0.05,
        rates=(1_000,),
        growth_sizes=(1_000, 3_000),
        rss_decisions=2_000,
        fsyncs=5,
    ),
    "default": Budget(
        mode="default",
        rounds=15,
        requests=2_000,
        server_rounds=6,
        server_seconds=1.5,
        connections=16,
        ops=20_000,
        log_records=100_000,
        rival_records=5_000,
        paced_seconds=3.0,
        rates=(1_000, 5_000),
        growth_sizes=(10_000, 100_000, 1_000_000),
        rss_decisions=1_000_000,
        fsyncs=200,
    ),
    "long": Budget(
        mode="long",
        rounds=21,
        requests=5_000,
        server_rounds=10,
        server_seconds=2.0,
        connections=16,
        ops=50_000,
        log_records=200_000,
        rival_records=10_000,
        paced_seconds=10.0,
        rates=(1_000, 5_000),
        growth_sizes=(10_000, 100_000, 1_000_000, 10_000_000),
        rss_decisions=1_000_000,
        fsyncs=500,
    ),
}
