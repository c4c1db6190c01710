"""A consent check reads the store once per subject, and a withdrawal is seen at once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import kzai_guard as kg
from kzai_guard.fact_cache import SubjectState
from kzai_guard.stores.base import Store
from kzai_guard.stores.url import open_store
from kzai_guard.testing import memory_guard
from tests.core.test_consent import T0, consents, times
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

SUBJECT_READS = ("consents_of", "objections_of")


class CountingStore:
    """A store that counts how often each subject's consents and objections are read."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads: Counter[str] = Counter()

    def consents_of(self, subject: str) -> list[kg.Consent]:
        self.reads[subject] += 1
        return self.store.consents_of(subject)

    def objections_of(self, subject: str) -> list[kg.Objection]:
        self.reads[subject] += 1
        return self.store.objections_of(subject)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def decide(guard: kg.Guard) -> str:
    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    with kg.decision_context("A-1"):
        try:
            return score()
        except kg.DecisionRefused as refused:
            return refused.problem.slug


def test_repeated_decisions_read_the_subjects_facts_once_and_a_withdrawal_blocks_the_next() -> None:
    store = CountingStore(open_store("memory://"))
    consent_screen, _ = memory_guard(
        [LOAN], store=store, contact="credit@example.kz", subject=GATEWAY_SUBJECT
    )
    consent_screen.consents.grant("A-1", "credit-scoring", "v1")
    consent_screen.close()
    guard, _ = memory_guard(
        [LOAN], store=store, contact="credit@example.kz", subject=GATEWAY_SUBJECT
    )
    store.reads.clear()

    first = decide(guard)
    reads_after_first = store.reads["A-1"]
    repeated = [decide(guard) for _ in range(5)]
    reads_after_repeated = store.reads["A-1"]
    guard.consents.withdraw("A-1", "credit-scoring")
    after_withdrawal = decide(guard)

    assert (first, repeated) == ("approved", ["approved"] * 5)
    assert reads_after_first == len(SUBJECT_READS)
    assert reads_after_repeated == reads_after_first
    assert after_withdrawal == "no-legal-basis"
    guard.close()
    store.close()


def _state(records: list[kg.Consent], objects_to: frozenset[str] = frozenset()) -> SubjectState:
    active = tuple(c for c in records if c.withdrawn_at is None)
    return SubjectState(
        consents={"credit": active} if active else {},
        objects_to_all=False,
        objects_to=objects_to,
    )


@given(
    st.lists(consents(), max_size=4),
    times,
    st.lists(times, max_size=8),
    st.sampled_from([None, "v1", "v2"]),
    st.sampled_from([frozenset(), frozenset({"loan"}), frozenset({"other"})]),
)
def test_a_policys_facts_hold_the_rules_answer_at_every_time_inside_their_span(
    records: list[kg.Consent],
    at: datetime,
    others: list[datetime],
    notice: str | None,
    objects_to: frozenset[str],
) -> None:
    state = _state(records, objects_to)
    facts = state.facts_for("credit", notice, "loan", at)
    assert facts.since <= at < facts.until
    assert facts.consent is state.consent_valid("credit", notice, at)
    assert facts.objection is state.objected("loan")
    assert state.spans[("credit", notice, "loan")] is facts
    edges = [t for c in state.consents.get("credit", ()) for t in (c.granted_at, c.expires_at)]
    for t in [*others, facts.since, *(e for e in edges if e is not None)]:
        if facts.since <= t < facts.until:
            assert state.consent_valid("credit", notice, t) is facts.consent
    # the span ends where the answer may change: at an edge, or at the end of time
    assert facts.until == datetime.max.replace(tzinfo=UTC) or facts.until in edges
    assert facts.since == datetime.min.replace(tzinfo=UTC) or facts.since in edges


@given(st.lists(consents(), max_size=4), times)
def test_a_policy_without_a_purpose_never_has_consent_at_any_time(
    records: list[kg.Consent], at: datetime
) -> None:
    facts = _state(records).facts_for(None, None, "loan", at)
    assert (facts.consent, facts.since, facts.until) == (
        False,
        datetime.min.replace(tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
    )


def test_a_naive_time_gets_an_empty_span_that_is_not_kept() -> None:
    state = _state([], frozenset({"loan"}))
    at = datetime(2026, 3, 1)
    facts = state.facts_for("credit", None, "loan", at)
    assert facts == (False, True, at, at)
    assert state.spans == {}


def test_a_decision_judges_a_kept_span_again_when_the_clock_leaves_it_either_way() -> None:
    now = [T0]
    guard, _ = memory_guard(
        [LOAN], contact="credit@example.kz", subject=GATEWAY_SUBJECT, clock=lambda: now[0]
    )
    guard.consents.grant("A-1", "credit-scoring", "v1", term=timedelta(seconds=60))
    outcomes = []
    for offset in (0, 59, 60, -1, 30):
        now[0] = T0 + timedelta(seconds=offset)
        outcomes.append(decide(guard))
    assert outcomes == ["approved", "approved", "no-legal-basis", "no-legal-basis", "approved"]
    guard.close()
