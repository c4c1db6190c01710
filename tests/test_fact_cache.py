"""A consent check reads the store once per subject, and a withdrawal is seen at once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import kzai_guard as kg
from kzai_guard.stores.base import Store
from kzai_guard.stores.url import open_store
from kzai_guard.testing import memory_guard
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
