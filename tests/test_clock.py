"""One clock for the whole guard: what it stamps and what it judges by agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import kzai_guard as kg
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

POLICY = kg.DecisionPolicy(
    name="loan",
    purpose="credit",
    significance="legal-effect",
    autonomy="high",
    risk="high",
    model=kg.ModelInfo(name="m", version="1"),
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 19, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_consents_objections_and_tickets_are_stamped_by_the_guards_clock() -> None:
    clock = Clock()
    guard, _ = memory_guard([POLICY], contact="c", clock=clock, subject=GATEWAY_SUBJECT)
    consent = guard.consents.grant("A-1", "credit", "v1", term=timedelta(days=30))
    objection = guard.objections.record("A-1")
    assert (consent.granted_at, consent.expires_at) == (clock.now, clock.now + timedelta(days=30))
    assert objection.recorded_at == clock.now
    guard.close()


def test_a_consent_granted_now_counts_now_and_lapses_when_the_clock_passes_its_term() -> None:
    clock = Clock()
    guard, _ = memory_guard([POLICY], contact="c", clock=clock, subject=GATEWAY_SUBJECT)

    @guard.decision("loan")
    def decide() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    guard.consents.grant("A-1", "credit", "v1", term=timedelta(days=30))
    with kg.decision_context("A-1"):
        assert decide() == "approved"
    clock.now += timedelta(days=31)
    with kg.decision_context("A-1"):
        try:
            decide()
        except kg.DecisionBlocked as blocked:
            assert blocked.problem.slug == "no-legal-basis"
        else:
            raise AssertionError("a lapsed consent was relied on")
    guard.close()
