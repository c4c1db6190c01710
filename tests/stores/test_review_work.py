"""The reviewer's work in every store backend: claims with leases, decisions, the queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from kzai_guard.core.oversight import ConflictReason, OverrideAction, ReviewerOverride
from kzai_guard.core.review import ReviewOutcome, ReviewStatus
from kzai_guard.errors import ReviewConflict, UnknownRecord
from kzai_guard.stores.base import Store
from tests.stores.test_store_contract import (  # noqa: F401 - fixtures
    BACKENDS,
    PERSISTENT_BACKENDS,
    T0,
    backends,
    opener,
    pg_database,
    store,
    store_url,
    ticket,
    unique,
)

LEASE = timedelta(minutes=30)


def conflict(reason: ConflictReason) -> pytest.RaisesExc[ReviewConflict]:
    return pytest.raises(ReviewConflict, check=lambda exc: exc.reason is reason)


@backends(*BACKENDS)
def test_a_live_claim_keeps_others_off_and_an_expired_one_does_not(store: Store) -> None:  # noqa: F811
    t = ticket("S-1")
    store.add_review(t)

    held = store.claim_review(t.id, reviewer="E-9", at=T0, lease_until=T0 + LEASE)
    with conflict(ConflictReason.CLAIMED):
        store.claim_review(t.id, reviewer="E-7", at=T0 + LEASE / 2, lease_until=T0 + 2 * LEASE)
    taken = store.claim_review(t.id, reviewer="E-7", at=T0 + LEASE, lease_until=T0 + 2 * LEASE)

    assert (held.claimed_by, held.lease_until) == ("E-9", T0 + LEASE)
    assert (taken.claimed_by, taken.claimed_at) == ("E-7", T0 + LEASE)


@backends(*BACKENDS)
def test_only_the_holder_decides_or_releases_and_a_decided_ticket_is_closed(store: Store) -> None:  # noqa: F811
    t = ticket("S-2")
    store.add_review(t)
    with conflict(ConflictReason.NOT_CLAIMED):
        store.decide_review(t.id, reviewer="E-9", outcome=ReviewOutcome.APPROVED, note=None, at=T0)
    store.claim_review(t.id, reviewer="E-9", at=T0, lease_until=T0 + LEASE)
    with conflict(ConflictReason.NOT_CLAIMED):
        store.release_review(t.id, reviewer="E-7")

    done = store.decide_review(
        t.id, reviewer="E-9", outcome=ReviewOutcome.REJECTED, note="why", at=T0 + LEASE
    )

    assert (done.status, done.reviewer, done.outcome, done.note, done.completed_at) == (
        ReviewStatus.COMPLETED,
        "E-9",
        ReviewOutcome.REJECTED,
        "why",
        T0 + LEASE,
    )
    assert store.review_work([t.id])[t.id].claimed_by is None
    with conflict(ConflictReason.CLOSED):
        store.claim_review(t.id, reviewer="E-7", at=T0, lease_until=T0 + LEASE)
    with pytest.raises(UnknownRecord):
        store.claim_review("no-such", reviewer="E-7", at=T0, lease_until=T0 + LEASE)


@backends(*BACKENDS)
def test_escalation_is_kept_and_releases_the_claim(store: Store) -> None:  # noqa: F811
    t = ticket("S-3")
    store.add_review(t)
    store.claim_review(t.id, reviewer="E-9", at=T0, lease_until=T0 + LEASE)
    with conflict(ConflictReason.CLAIMED):
        store.escalate_review(t.id, reviewer="E-7", reason="mine", at=T0)

    work = store.escalate_review(t.id, reviewer="E-9", reason="needs a senior", at=T0)

    assert (work.claimed_by, work.escalated_by, work.escalated_at, work.escalation_reason) == (
        None,
        "E-9",
        T0,
        "needs a senior",
    )
    assert (
        store.claim_review(t.id, reviewer="E-1", at=T0, lease_until=T0 + LEASE).claimed_by == "E-1"
    )


@backends(*BACKENDS)
def test_the_queue_filters_by_status_policy_and_deadline_and_pages_by_deadline(
    store: Store,  # noqa: F811
) -> None:
    late = ticket("S-4", at=T0 + timedelta(days=1))
    early = ticket("S-5", at=T0)
    store.add_review(late)
    store.add_review(early)
    store.claim_review(late.id, reviewer="E-9", at=T0, lease_until=T0 + LEASE)
    store.decide_review(late.id, reviewer="E-9", outcome=ReviewOutcome.APPROVED, note=None, at=T0)

    def ids(**filters: object) -> list[str]:
        options: dict[str, object] = {
            "status": None,
            "policy": None,
            "deadline_before": None,
            "limit": 10,
            "offset": 0,
        }
        return [t.id for t in store.review_queue(**{**options, **filters})]  # type: ignore[arg-type]

    mine = {early.id, late.id}
    assert [i for i in ids() if i in mine] == [early.id, late.id]
    assert [i for i in ids(status=ReviewStatus.OPEN) if i in mine] == [early.id]
    assert [i for i in ids(status=ReviewStatus.COMPLETED) if i in mine] == [late.id]
    assert ids(policy="no-such-policy") == []
    assert [i for i in ids(deadline_before=early.deadline + timedelta(hours=1)) if i in mine] == [
        early.id
    ]
    assert len(ids(limit=1)) == 1


@backends(*BACKENDS)
def test_overrides_are_kept_per_decision_oldest_first(store: Store) -> None:  # noqa: F811
    decision = unique("d")
    first = ReviewerOverride(
        unique("o"), decision, "card_limit", "E-9", OverrideAction.CORRECT, "x", T0
    )
    second = ReviewerOverride(
        unique("o"), decision, "card_limit", "E-7", OverrideAction.CANCEL, None, T0 + LEASE
    )
    store.add_override(second)
    store.add_override(first)

    assert store.overrides_of(decision) == [first, second]
    assert store.overrides_of(unique("d")) == []


@backends(*PERSISTENT_BACKENDS)
def test_a_claim_made_through_one_connection_holds_for_another(
    opener: Callable[[], Store],  # noqa: F811
) -> None:
    one, two = opener(), opener()
    t = ticket("S-6")
    one.add_review(t)
    one.claim_review(t.id, reviewer="E-9", at=T0, lease_until=T0 + LEASE)

    with conflict(ConflictReason.CLAIMED):
        two.claim_review(t.id, reviewer="E-7", at=T0, lease_until=T0 + LEASE)
    assert two.review_work([t.id])[t.id].claimed_by == "E-9"
