"""The guard trusts its cached facts only while the store's change feed was read recently, and
never turns a store failure into a raw error."""

from __future__ import annotations

from typing import Any

import pytest

import kzai_guard as kg
from kzai_guard.core.verdict import Reason
from kzai_guard.errors import StoreError
from kzai_guard.stores.base import Store
from kzai_guard.stores.url import open_store
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

OFFERS = kg.DecisionPolicy(
    name="offers",
    significance=kg.Significance.NONE,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.MINIMAL,
)


class BreakableStore:
    """A real store whose reads (and review tickets) raise StoreError, as a store out of reach
    does, while broken."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.broken = False
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if name not in ("consents_of", "objections_of", "changes_since", "switches", "add_review"):
            return method

        def read(*args: Any) -> Any:
            self.calls += 1
            if self.broken:
                raise StoreError("the store is out of reach")
            return method(*args)

        return read


def outcome(guard: kg.Guard, policy: str, subject: str) -> str:
    @guard.decision(policy)
    def decide() -> str:
        kg.explain(EXPLANATION)
        return "allow"

    with kg.decision_context(subject):
        try:
            return decide()
        except kg.DecisionRefused as refused:
            return refused.problem.slug


@pytest.fixture
def breakable() -> Any:
    store = BreakableStore(open_store("memory://"))
    guard, sink = memory_guard(
        [LOAN, OFFERS],
        store=store,
        subject=GATEWAY_SUBJECT,
        contact="credit@example.kz",
        stale_after=60.0,
    )
    yield guard, sink, store
    guard.close()
    store.store.close()


def test_a_subject_whose_facts_cannot_be_read_is_refused_with_facts_unavailable(
    breakable: Any,
) -> None:
    guard, sink, store = breakable
    guard.consents.grant("A-1", "credit-scoring", "v1")
    store.broken = True

    refused = outcome(guard, "loan_approval", "A-1")
    not_significant = outcome(guard, "offers", "A-1")

    assert refused == "facts-unavailable"
    assert not_significant == "allow"
    record = next(r for r in sink.records if r.reason == Reason.FACTS_UNAVAILABLE)
    assert (record.verdict, record.policy, record.subject) == (
        "block",
        "loan_approval",
        guard.auditor.pseudonym("A-1"),
    )


def test_facts_older_than_stale_after_refuse_significant_decisions_until_the_next_read(
    breakable: Any,
) -> None:
    guard, _, store = breakable
    guard.facts.stop()
    guard.consents.grant("A-1", "credit-scoring", "v1")
    assert outcome(guard, "loan_approval", "A-1") == "allow"
    store.broken = True
    with pytest.raises(StoreError):
        guard.facts.refresh()
    read_at = guard.facts.read_at
    guard.facts.read_at -= 61.0  # as if the last read were a minute old

    calls = store.calls
    stale = [outcome(guard, "loan_approval", "A-1"), outcome(guard, "offers", "A-1")]
    unknown_while_stale = outcome(guard, "offers", "Z-9")
    calls_while_stale = store.calls - calls
    store.broken = False
    guard.facts.refresh()
    fresh = outcome(guard, "loan_approval", "A-1")

    assert guard.facts.read_at > read_at - 61.0
    assert stale == ["facts-unavailable", "allow"]
    assert (unknown_while_stale, calls_while_stale) == ("allow", 0)
    assert fresh == "allow"


def test_a_routed_decision_whose_review_ticket_cannot_be_stored_is_refused_likewise(
    breakable: Any,
) -> None:
    guard, sink, store = breakable
    guard.objections.record("A-1")
    assert outcome(guard, "loan_approval", "A-1") == "human-review"
    store.broken = True

    refused = outcome(guard, "loan_approval", "A-1")

    assert refused == "facts-unavailable"
    assert sink.records[-1].reason == Reason.FACTS_UNAVAILABLE
    assert sink.records[-1].review_id is None


def test_stale_after_must_be_longer_than_the_poll_interval() -> None:
    with pytest.raises(
        kg.ConfigurationError, match=r"stale_after \(0.5s\) must be longer than poll_interval"
    ):
        memory_guard([LOAN], subject=GATEWAY_SUBJECT, stale_after=0.5, poll_interval=0.5)
