"""The gate's memory of subjects it has already checked and pseudonymised."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import kzai_guard as kg
from kzai_guard import gate
from kzai_guard.core.pseudonym import Pseudonymizer
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

KEY = b"kzai-guard-test-pseudonym-key-32b"


@pytest.fixture
def guarded() -> Iterator[tuple[kg.Guard, kg.MemorySink]]:
    guard, sink = memory_guard(
        [LOAN], contact="credit@example.kz", pseudonym_key=KEY, subject=GATEWAY_SUBJECT
    )
    yield guard, sink
    guard.close()


def scorer(guard: kg.Guard) -> Callable[[], str]:
    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    return score


def decide(score: Callable[[], str], subject: str) -> str:
    with kg.decision_context(subject):
        try:
            return score()
        except kg.DecisionRefused as exc:
            return exc.problem.slug


def test_a_returning_subject_is_recorded_under_its_pseudonym_every_time(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    score = scorer(guard)
    guard.consents.grant("A-1", "credit-scoring", "v1")

    assert [decide(score, "A-1") for _ in range(3)] == ["approved"] * 3

    expected = Pseudonymizer(KEY)("A-1")
    assert [r.subject for r in sink.of_kind(kg.EventKind.DECISION)] == [expected] * 3


def test_an_unusable_subject_is_refused_each_time_it_comes_back(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    score = scorer(guard)
    guard.consents.grant("A-1", "credit-scoring", "v1")

    outcomes = [decide(score, s) for s in ("A-1", "A-1 ", "A-1 ", "A-1")]

    assert outcomes == ["approved", "subject-invalid", "subject-invalid", "approved"]
    reasons = [r.reason for r in sink.of_kind(kg.EventKind.DECISION)]
    assert reasons == ["consent", "subject-invalid", "subject-invalid", "consent"]


def test_subjects_beyond_the_memory_limit_are_still_checked_and_pseudonymised(
    guarded: tuple[kg.Guard, kg.MemorySink], monkeypatch: pytest.MonkeyPatch
) -> None:
    guard, sink = guarded
    monkeypatch.setattr(gate, "_SUBJECT_REFS_LIMIT", 2)
    score = scorer(guard)
    subjects = ["A-1", "A-2", "A-3", "A-1", "A-2", "A-3"]
    for subject in subjects[:3]:
        guard.consents.grant(subject, "credit-scoring", "v1")

    assert [decide(score, s) for s in subjects] == ["approved"] * 6

    pseudonym = Pseudonymizer(KEY)
    recorded = [r.subject for r in sink.of_kind(kg.EventKind.DECISION)]
    assert recorded == [pseudonym(s) for s in subjects]


def test_a_subject_checked_under_one_policy_is_not_checked_again_under_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    card = LOAN.model_copy(update={"name": "card_limit"})
    guard, sink = memory_guard(
        [LOAN, card], contact="credit@example.kz", pseudonym_key=KEY, subject=GATEWAY_SUBJECT
    )
    checked: list[str] = []
    real_check = gate.check_subject
    monkeypatch.setattr(
        gate, "check_subject", lambda raw: (checked.append(raw), real_check(raw))[1]
    )
    guard.consents.grant("A-1", "credit-scoring", "v1")

    @guard.decision("card_limit")
    def limit() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    assert [decide(scorer(guard), "A-1"), decide(limit, "A-1")] == ["approved", "approved"]
    guard.close()

    assert checked == ["A-1"]
    expected = Pseudonymizer(KEY)("A-1")
    assert [r.subject for r in sink.of_kind(kg.EventKind.DECISION)] == [expected, expected]
