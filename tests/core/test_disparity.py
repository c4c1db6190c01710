"""Disparity statistics: selection rates, ratios, differences, intervals and the test."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.disparity import (
    GroupOutcomes,
    Thresholds,
    assess,
    selection_rate,
    two_proportion_p_value,
    wilson_interval,
)


@st.composite
def group_outcomes(draw: st.DrawFn, name: str) -> GroupOutcomes:
    decisions = draw(st.integers(0, 5000))
    return GroupOutcomes(name, decisions, draw(st.integers(0, decisions)))


grounds = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True).flatmap(
    lambda names: st.tuples(*(group_outcomes(n) for n in names))
)


@given(grounds, st.integers(1, 200))
def test_every_group_is_compared_with_the_most_favoured(
    outcomes: tuple[GroupOutcomes, ...], min_sample: int
) -> None:
    result = assess(outcomes, Thresholds(min_sample=min_sample))
    assert [d.group for d in result] == sorted(g.group for g in outcomes)
    reference = {d.reference for d in result}
    assert len(reference) == 1
    best = next(d for d in result if d.group in reference)
    assert best.ratio == 1.0 and best.difference == 0.0 and best.p_value == 1.0
    for d in result:
        assert d.rate == selection_rate(d.favourable, d.decisions)
        assert 0.0 <= d.interval[0] <= d.rate <= d.interval[1] <= 1.0
        assert 0.0 <= d.p_value <= 1.0
        assert math.isclose(d.difference, best.rate - d.rate, abs_tol=1e-12)
        if best.rate > 0:
            assert math.isclose(d.ratio, d.rate / best.rate)
        if d.flagged:
            assert d.enough and d.ratio < 0.8 and d.p_value < 0.05
        sized = d.decisions >= min_sample and best.decisions >= min_sample
        assert d.enough == sized
    eligible = [g for g in outcomes if g.decisions >= min_sample] or list(outcomes)
    assert best.rate == max(selection_rate(g.favourable, g.decisions) for g in eligible)


@given(st.integers(0, 500), st.integers(1, 500), st.integers(0, 500), st.integers(1, 500))
def test_the_test_is_symmetric(x1: int, n1: int, x2: int, n2: int) -> None:
    x1, x2 = min(x1, n1), min(x2, n2)
    assert two_proportion_p_value(x1, n1, x2, n2) == two_proportion_p_value(x2, n2, x1, n1)


def test_known_values() -> None:
    # 30/100 against 50/100: pooled 0.4, z = -0.2 / sqrt(0.48 / 100) = -2.8868; p = 0.003892
    assert two_proportion_p_value(30, 100, 50, 100) == pytest.approx(0.0038924, rel=1e-4)
    # Wilson 95 % interval of 0/10 is (0, 0.2775) and of 5/10 (0.2366, 0.7634)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert two_proportion_p_value(0, 0, 3, 4) == 1.0
    assert two_proportion_p_value(4, 4, 3, 3) == 1.0


def test_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="between 0 and decisions"):
        GroupOutcomes("a", 3, 4)


def test_a_small_group_is_not_judged() -> None:
    result = assess(
        [GroupOutcomes("a", 1000, 600), GroupOutcomes("b", 10, 0)], Thresholds(min_sample=30)
    )
    assert [d.flagged for d in result] == [False, False]
    assert result[1].enough is False and result[1].ratio == 0.0


def _traffic(seed: int, rates: dict[str, float], per_group: int) -> list[GroupOutcomes]:
    rng = random.Random(seed)
    return [
        GroupOutcomes(group, per_group, sum(rng.random() < rate for _ in range(per_group)))
        for group, rate in rates.items()
    ]


ALPHA = 0.05
SEEDS = range(400)


def test_without_disparity_false_alarms_stay_under_the_level() -> None:
    # Equal rates, four groups; the ratio threshold is set loose (0.95) so that the test's
    # level, not the four-fifths rule, is what keeps false alarms down.
    thresholds = Thresholds(ratio_below=0.95, alpha=ALPHA, min_sample=30)
    rates = {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5}
    alarms = sum(
        any(d.flagged for d in assess(_traffic(seed, rates, 300), thresholds)) for seed in SEEDS
    )
    assert alarms / len(SEEDS) <= ALPHA


def test_a_planted_disparity_is_detected() -> None:
    thresholds = Thresholds(alpha=ALPHA, min_sample=30)
    rates = {"a": 0.6, "b": 0.6, "c": 0.36}  # c's ratio: 0.6
    found = 0
    for seed in range(100):
        result = assess(_traffic(seed, rates, 300), thresholds)
        flagged = {d.group for d in result if d.flagged}
        assert flagged <= {"c"}
        found += flagged == {"c"}
    assert found >= 95
