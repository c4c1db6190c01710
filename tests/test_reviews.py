"""Human review: completing tickets, reviewer identity, overrides by autonomy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import kzai_guard as kg
from kzai_guard.testing import memory_guard
from tests.samples import GATEWAY_SUBJECT
from tests.samples import LOAN as HIGH

MEDIUM = kg.DecisionPolicy(
    name="card_limit",
    purpose="credit-scoring",
    significance=kg.Significance.SIMILARLY_SIGNIFICANT,
    autonomy=kg.Autonomy.MEDIUM,
    risk=kg.RiskClass.MEDIUM,
    model=kg.ModelInfo(name="limits", version="1.0"),
)


@pytest.fixture
def guarded() -> Iterator[tuple[kg.Guard, kg.MemorySink]]:
    guard, sink = memory_guard([HIGH, MEDIUM], contact="credit@example.kz", subject=GATEWAY_SUBJECT)
    yield guard, sink
    guard.close()


def routed_ticket(guard: kg.Guard, subject: str) -> kg.ReviewTicket:
    @guard.decision("loan_approval")
    def score() -> str:
        return "approved"

    guard.objections.record(subject)
    with kg.decision_context(subject), pytest.raises(kg.HumanReviewRequired) as caught:
        score()
    return caught.value.ticket


def test_complete_records_reviewer_and_outcome_in_the_store(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, _ = guarded
    ticket = routed_ticket(guard, "R-1")

    done = guard.reviews.complete(
        ticket.id,
        reviewer=kg.Reviewer(id="officer-7", display_name="Aigerim"),
        outcome="rejected",
        note="income unverified",
    )

    stored = guard.reviews.get(ticket.id)
    assert stored == done
    assert (stored.status, stored.reviewer, stored.outcome, stored.note) == (
        kg.ReviewStatus.COMPLETED,
        "officer-7",
        kg.ReviewOutcome.REJECTED,
        "income unverified",
    )
    assert stored.completed_at is not None
    assert guard.reviews.pending() == []


def test_complete_writes_a_review_completed_audit_record_with_the_reviewer_id(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    ticket = routed_ticket(guard, "R-2")

    guard.reviews.complete(ticket.id, reviewer=kg.Reviewer(id="officer-7"), outcome="approved")

    [record] = sink.of_kind(kg.EventKind.REVIEW_COMPLETED)
    assert (record.reviewer, record.review_id, record.policy, record.detail) == (
        guard.auditor.reviewer_ref("officer-7"),
        ticket.id,
        "loan_approval",
        "approved",
    )
    assert record.subject == guard.auditor.pseudonym("R-2")


def test_routing_writes_a_review_opened_audit_record_for_the_ticket(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    ticket = routed_ticket(guard, "R-3")

    [record] = sink.of_kind(kg.EventKind.REVIEW_OPENED)
    assert (record.review_id, record.policy, record.detail) == (
        ticket.id,
        "loan_approval",
        "objection",
    )


@pytest.mark.parametrize("reviewer", [kg.Reviewer(id=""), None, "officer-7"])
def test_complete_without_an_identified_reviewer_raises_value_error(
    guarded: tuple[kg.Guard, kg.MemorySink], reviewer: object
) -> None:
    guard, sink = guarded
    ticket = routed_ticket(guard, "R-4")

    with pytest.raises(ValueError, match="identified Reviewer"):
        guard.reviews.complete(ticket.id, reviewer=reviewer, outcome="approved")  # type: ignore[arg-type]

    assert guard.reviews.get(ticket.id).status is kg.ReviewStatus.OPEN
    assert sink.of_kind(kg.EventKind.REVIEW_COMPLETED) == []


def test_completing_a_ticket_twice_raises_store_error_and_keeps_the_first_reviewer(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    ticket = routed_ticket(guard, "R-5")
    guard.reviews.complete(ticket.id, reviewer=kg.Reviewer(id="first"), outcome="approved")

    with pytest.raises(kg.StoreError):
        guard.reviews.complete(ticket.id, reviewer=kg.Reviewer(id="second"), outcome="rejected")

    assert guard.reviews.get(ticket.id).reviewer == "first"
    assert [r.reviewer for r in sink.of_kind(kg.EventKind.REVIEW_COMPLETED)] == [
        guard.auditor.reviewer_ref("first")
    ]


def test_completing_an_unknown_ticket_raises_unknown_record(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, _ = guarded
    with pytest.raises(kg.UnknownRecord):
        guard.reviews.complete("no-such-ticket", reviewer=kg.Reviewer(id="a"), outcome="approved")


def test_override_of_a_high_autonomy_policy_raises_configuration_error(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded

    with pytest.raises(kg.ConfigurationError, match="high autonomy"):
        guard.override(
            "d-1", policy="loan_approval", reviewer=kg.Reviewer(id="officer-7"), action="cancel"
        )

    assert sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN) == []


def test_override_of_a_medium_autonomy_policy_records_decision_overridden(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded

    guard.override(
        "d-2",
        policy="card_limit",
        reviewer=kg.Reviewer(id="officer-7"),
        action="correct",
        note="limit lowered",
    )

    [record] = sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN)
    assert (record.policy, record.reviewer, record.detail) == (
        "card_limit",
        guard.auditor.reviewer_ref("officer-7"),
        "correct d-2: limit lowered",
    )


def test_override_with_an_unknown_action_raises_value_error(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded

    with pytest.raises(ValueError, match="'correct' or 'cancel'"):
        guard.override(
            "d-3", policy="card_limit", reviewer=kg.Reviewer(id="officer-7"), action="delete"
        )

    assert sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN) == []


def test_overdue_lists_only_open_tickets_past_their_deadline_at_the_given_time(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, _ = guarded
    late = routed_ticket(guard, "R-late")
    answered = routed_ticket(guard, "R-answered")
    guard.reviews.complete(answered.id, reviewer=kg.Reviewer(id="officer-7"), outcome="approved")

    assert guard.reviews.overdue(at=late.deadline) == []
    assert guard.reviews.overdue(at=late.deadline + timedelta(seconds=1)) == [late]


def test_a_guard_wide_review_deadline_counts_its_working_days_past_the_weekend() -> None:
    monday = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    guard, _ = memory_guard(
        [HIGH],
        contact="credit@example.kz",
        clock=lambda: monday,
        review_deadline_days=5,
        subject=GATEWAY_SUBJECT,
    )

    ticket = routed_ticket(guard, "R-6")

    # Tue 3 .. Fri 6 and Mon 9 February; the ticket is due by the end of Monday in Almaty
    assert (ticket.opened_at, ticket.deadline) == (monday, datetime(2026, 2, 9, 19, 0, tzinfo=UTC))
    guard.close()


def test_a_policys_review_deadline_overrides_the_guards_and_skips_a_carried_over_holiday() -> None:
    friday = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    two_days = HIGH.model_copy(update={"review_deadline_days": 2})
    guard, _ = memory_guard(
        [two_days],
        contact="credit@example.kz",
        clock=lambda: friday,
        review_deadline_days=5,
        subject=GATEWAY_SUBJECT,
    )

    ticket = routed_ticket(guard, "R-7")

    # 8 March is a Sunday in 2026, so Monday 9th is off: Tue 10 and Wed 11 count
    assert ticket.deadline == datetime(2026, 3, 11, 19, 0, tzinfo=UTC)
    guard.close()
