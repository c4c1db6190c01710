"""The guard trusts its cached facts only while the store's change feed was read recently, and
never turns a store failure into a raw error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import kzai_guard as kg
from kzai_guard.core.verdict import Reason
from kzai_guard.errors import StoreError
from kzai_guard.stores.base import Store, SwitchState
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


@pytest.mark.parametrize("failing_read", ["a subject's facts", "the change feed"])
def test_after_a_failed_read_no_cached_fact_is_trusted_until_the_change_feed_is_read_again(
    breakable: Any, failing_read: str
) -> None:
    guard, _, store = breakable
    guard.facts.stop()
    guard.consents.grant("A-1", "credit-scoring", "v1")
    guard.consents.grant("B-1", "credit-scoring", "v1")
    guard.facts.refresh()
    assert outcome(guard, "loan_approval", "A-1") == "allow"
    store.broken = True
    if failing_read == "the change feed":
        with pytest.raises(StoreError):
            guard.facts.refresh()
    else:
        assert outcome(guard, "loan_approval", "B-1") == "facts-unavailable"
    # another host throws the kill switch while this one is cut off, then the link returns
    store.store.set_switch(
        SwitchState("loan_approval", True, datetime.now(UTC), "ops@example.kz", None)
    )
    store.broken = False

    before_the_feed = [outcome(guard, "loan_approval", "B-1"), outcome(guard, "offers", "A-1")]
    guard.facts.refresh()
    after_the_feed = outcome(guard, "loan_approval", "A-1")

    assert before_the_feed == ["facts-unavailable", "allow"]
    assert after_the_feed == "suspended"


def test_stale_after_must_be_longer_than_the_poll_interval() -> None:
    with pytest.raises(
        kg.ConfigurationError, match=r"stale_after \(0.5s\) must be longer than poll_interval"
    ):
        memory_guard([LOAN], subject=GATEWAY_SUBJECT, stale_after=0.5, poll_interval=0.5)
