"""Samples, figures and interleaved timing: the vocabulary every section speaks.

A :class:`Figure` is one line of the results table: a subject measured side by side with its
baseline in the same run, each summarised as a :class:`Sample` (median over repetitions, with
the interquartile range and min-max). Baseline and subject repetitions are interleaved, and the
order alternates each round (A B, B A, A B, ...) so that slow drift of the machine cancels out.
A figure whose subject could not be measured carries the :data:`UNAVAILABLE` marker instead of
numbers and counts as a miss.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

UNAVAILABLE = "unavailable"
"""Stands in for every number of a figure that could not be measured."""

Status = Literal["PASS", "MISS", "INFO", "UNAVAILABLE"]
Direction = Literal["max", "min"]
"""``max``: the subject must stay at or below the target; ``min``: at or above it."""


@dataclass(frozen=True, slots=True)
class Sample:
    """A median over repetitions, with its spread."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        """Summarise repetitions; one value gives a zero-width spread."""
        if not values:
            raise ValueError("a sample needs at least one value")
        ordered = sorted(values)
        if len(ordered) >= 2:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        else:
            q1 = q3 = ordered[0]
        return cls(statistics.median(ordered), q1, q3, ordered[0], ordered[-1], len(ordered))

    def as_json(self) -> dict[str, float | int]:
        return {
            "median": self.median,
            "q1": self.q1,
            "q3": self.q3,
            "min": self.low,
            "max": self.high,
            "n": self.n,
        }


@dataclass(frozen=True, slots=True)
class Target:
    """A goal a figure is held to; ``on`` says which number: the subject, delta or ratio."""

    limit: float
    direction: Direction
    on: Literal["subject", "delta", "ratio"] = "subject"
    text: str = ""

    def met(self, value: float) -> bool:
        return value <= self.limit if self.direction == "max" else value >= self.limit


@dataclass(slots=True)
class Figure:
    """One measured quantity beside its baseline.

    ``delta`` is subject minus baseline, ``ratio`` subject over baseline (both on medians).
    """

    section: str
    name: str
    unit: str
    subject_label: str
    subject: Sample | None
    baseline_label: str | None = None
    baseline: Sample | None = None
    target: Target | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def delta(self) -> float | None:
        if self.subject is None or self.baseline is None:
            return None
        return self.subject.median - self.baseline.median

    @property
    def ratio(self) -> float | None:
        if self.subject is None or self.baseline is None or self.baseline.median == 0:
            return None
        return self.subject.median / self.baseline.median

    @property
    def status(self) -> Status:
        if self.subject is None:
            return "UNAVAILABLE"
        if self.target is None:
            return "INFO"
        value = {"subject": self.subject.median, "delta": self.delta, "ratio": self.ratio}[
            self.target.on
        ]
        if value is None:
            return "MISS"
        return "PASS" if self.target.met(value) else "MISS"

    def as_json(self) -> dict[str, Any]:
        def number(value: float | None) -> float | str | None:
            if self.subject is None:
                return UNAVAILABLE
            return value

        return {
            "section": self.section,
            "name": self.name,
            "unit": self.unit,
            "subject_label": self.subject_label,
            "subject": self.subject.as_json() if self.subject else UNAVAILABLE,
            "baseline_label": self.baseline_label,
            "baseline": self.baseline.as_json() if self.baseline else None,
            "delta": number(self.delta),
            "ratio": number(self.ratio),
            "target": (
                {
                    "limit": self.target.limit,
                    "direction": self.target.direction,
                    "on": self.target.on,
                    "text": self.target.text,
                }
                if self.target
                else None
            ),
            "status": self.status,
            "note": self.note,
            "extra": self.extra,
        }


def unavailable(section: str, name: str, unit: str, reason: str, **kw: Any) -> Figure:
    """A figure whose subject could not be measured: reported, and counted as a miss."""
    return Figure(section, name, unit, UNAVAILABLE, None, note=f"not available: {reason}", **kw)


def per_op_us(run: Callable[[int], object], n: int) -> float:
    """CPU microseconds per operation of ``run(n)``, which performs ``n`` operations.

    The process CPU clock, not the wall clock: on a machine shared with other work, time the
    process spends descheduled is not the operation's cost. For CPU-bound operations on a quiet
    machine the two agree.
    """
    start = time.process_time_ns()
    run(n)
    return (time.process_time_ns() - start) / n / 1_000


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of already sorted values, nearest rank."""
    if not ordered:
        raise ValueError("no values")
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


def rotated(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Interleave several runs round by round, rotating which goes first each round.

    With two runs this is A B, B A, A B, ...; every label gets ``rounds`` repetitions, returned
    in the order they ran.
    """
    labels = list(runs)
    values: dict[str, list[float]] = {label: [] for label in labels}
    for i in range(rounds):
        shift = i % len(labels)
        order = labels[shift:] + labels[:shift]
        if i % 2 == 1:
            order.reverse()
        for label in order:
            values[label].append(runs[label]())
    return values
