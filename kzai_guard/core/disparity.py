"""Disparity statistics (KZ-AI 6; AI Act 10(2)(f)): who gets the favourable outcome, by group.

Pure functions over counts: for one protected ground, each group's selection rate (favourable
outcomes over decisions) with a Wilson score interval, its ratio to the most favoured group's
rate (the four-fifths rule reads a ratio under 0.8 as adverse impact) and the difference, and a
two-sided two-proportion z-test of the two rates. A group is *flagged* when both it and the most
favoured group have at least the minimum sample, its ratio is under the threshold (or its
difference over the optional one), and the test is significant at ``alpha`` divided by the
number of pairs of groups (Bonferroni), so that the chance of a false alarm for a ground with
equal rates stays under ``alpha`` however many groups it has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "GroupDisparity",
    "GroupOutcomes",
    "Thresholds",
    "assess",
    "selection_rate",
    "two_proportion_p_value",
    "wilson_interval",
]

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class GroupOutcomes:
    """How many decisions one group of one ground got, and how many were favourable."""

    group: str
    decisions: int
    favourable: int

    def __post_init__(self) -> None:
        if self.decisions < 0 or not 0 <= self.favourable <= self.decisions:
            raise ValueError(
                f"group {self.group!r}: favourable ({self.favourable}) must be between 0 and "
                f"decisions ({self.decisions})"
            )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a group's disparity counts: ``ratio_below`` (0.8: the four-fifths rule), the
    optional ``difference_above``, ``alpha`` for the test and ``min_sample`` per group."""

    ratio_below: float = 0.8
    difference_above: float | None = None
    alpha: float = 0.05
    min_sample: int = 30


@dataclass(frozen=True, slots=True)
class GroupDisparity:
    """One group compared with the most favoured group of its ground.

    ``ratio`` and ``difference`` are ``rate / reference rate`` and ``reference rate - rate``;
    ``ratio`` is 1 when the reference rate is 0. ``p_value`` is the two-sided two-proportion
    z-test's (1 for the reference group itself). ``interval`` is the 95 % Wilson interval of
    ``rate``. ``enough`` says both groups have the minimum sample.
    """

    group: str
    decisions: int
    favourable: int
    rate: float
    interval: tuple[float, float]
    reference: str
    ratio: float
    difference: float
    p_value: float
    enough: bool
    flagged: bool


def selection_rate(favourable: int, decisions: int) -> float:
    """Favourable outcomes over decisions (0 when there were none)."""
    return favourable / decisions if decisions else 0.0


def wilson_interval(
    favourable: int, decisions: int, confidence: float = 0.95
) -> tuple[float, float]:
    """The Wilson score interval of a selection rate; ``(0, 1)`` without decisions."""
    if decisions == 0:
        return (0.0, 1.0)
    z = _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2)
    p = favourable / decisions
    denominator = 1 + z * z / decisions
    centre = (p + z * z / (2 * decisions)) / denominator
    half = z * math.sqrt(p * (1 - p) / decisions + z * z / (4 * decisions * decisions))
    half /= denominator
    # Rounding must not push the bounds past the rate (0/n has lower bound exactly 0).
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of ``x1/n1`` against ``x2/n2``.

    1 when either sample is empty or every outcome is the same (nothing to tell apart).
    """
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return min(1.0, math.erfc(abs(z) / math.sqrt(2)))


def assess(outcomes: Iterable[GroupOutcomes], thresholds: Thresholds) -> list[GroupDisparity]:
    """Compare every group of one ground with its most favoured group, in group order.

    The most favoured group is the one with the highest selection rate among those with the
    minimum sample (among all groups when none has it). Empty when there are no groups.
    """
    groups = sorted(outcomes, key=lambda g: g.group)
    if not groups:
        return []
    sized = [g for g in groups if g.decisions >= thresholds.min_sample] or groups
    reference = max(sized, key=lambda g: (selection_rate(g.favourable, g.decisions), g.group))
    reference_rate = selection_rate(reference.favourable, reference.decisions)
    pairs = max(1, len(groups) * (len(groups) - 1) // 2)
    level = thresholds.alpha / pairs
    return [_compare(g, reference, reference_rate, level, thresholds) for g in groups]


def _compare(
    group: GroupOutcomes,
    reference: GroupOutcomes,
    reference_rate: float,
    level: float,
    thresholds: Thresholds,
) -> GroupDisparity:
    rate = selection_rate(group.favourable, group.decisions)
    ratio = rate / reference_rate if reference_rate > 0 else 1.0
    difference = reference_rate - rate
    if group.group == reference.group:
        p_value = 1.0
    else:
        p_value = two_proportion_p_value(
            group.favourable, group.decisions, reference.favourable, reference.decisions
        )
    enough = min(group.decisions, reference.decisions) >= thresholds.min_sample
    large = ratio < thresholds.ratio_below or (
        thresholds.difference_above is not None and difference > thresholds.difference_above
    )
    return GroupDisparity(
        group=group.group,
        decisions=group.decisions,
        favourable=group.favourable,
        rate=rate,
        interval=wilson_interval(group.favourable, group.decisions),
        reference=reference.group,
        ratio=ratio,
        difference=difference,
        p_value=p_value,
        enough=enough,
        flagged=enough and large and p_value < level,
    )
