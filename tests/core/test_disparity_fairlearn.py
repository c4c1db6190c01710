"""Fairlearn's metrics agree with the library's selection rates, ratios and differences."""

from __future__ import annotations

import random

import pytest

from kzai_guard.core.disparity import GroupOutcomes, Thresholds, assess

metrics = pytest.importorskip("fairlearn.metrics")


@pytest.mark.parametrize("seed", range(20))
def test_fairlearn_agrees(seed: int) -> None:
    rng = random.Random(seed)
    groups = [f"g{i}" for i in range(rng.randint(2, 5))]
    rates = {g: rng.uniform(0.05, 0.95) for g in groups}
    sensitive: list[str] = []
    predicted: list[int] = []
    for group in groups:
        for _ in range(rng.randint(40, 400)):
            sensitive.append(group)
            predicted.append(int(rng.random() < rates[group]))
    outcomes = [
        GroupOutcomes(
            g,
            sum(1 for s in sensitive if s == g),
            sum(p for s, p in zip(sensitive, predicted, strict=True) if s == g),
        )
        for g in groups
    ]
    ours = assess(outcomes, Thresholds(min_sample=1))
    frame = metrics.MetricFrame(
        metrics={"rate": metrics.selection_rate},
        y_true=predicted,
        y_pred=predicted,
        sensitive_features=sensitive,
    )
    theirs = frame.by_group["rate"].to_dict()
    for d in ours:
        assert d.rate == pytest.approx(theirs[d.group], abs=1e-12)
    lowest = min(ours, key=lambda d: d.ratio)
    assert lowest.ratio == pytest.approx(
        metrics.demographic_parity_ratio(predicted, predicted, sensitive_features=sensitive)
    )
    assert max(d.difference for d in ours) == pytest.approx(
        metrics.demographic_parity_difference(predicted, predicted, sensitive_features=sensitive)
    )
