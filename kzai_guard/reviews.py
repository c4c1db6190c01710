"""Human review: tickets for routed decisions, completed by an identified reviewer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kzai_guard.audit.record import EventKind
from kzai_guard.auditor import Auditor
from kzai_guard.core.calendar import WorkingCalendar, review_deadline
from kzai_guard.core.review import (
    Reviewer,
    ReviewOutcome,
    ReviewStatus,
    ReviewTicket,
    is_overdue,
)
from kzai_guard.core.subject import check_text
from kzai_guard.ids import new_id
from kzai_guard.stores.base import Store

__all__ = ["Reviews"]


class Reviews:
    """Review tickets. ``guard.reviews.complete(...)`` is how a human answers one."""

    def __init__(
        self,
        store: Store,
        auditor: Auditor,
        calendar: WorkingCalendar,
        deadline_days: int,
        now: Callable[[], datetime],
    ) -> None:
        self._now = now
        self._store = store
        self._auditor = auditor
        self._calendar = calendar
        self._deadline_days = deadline_days

    def open(
        self,
        *,
        decision_id: str,
        policy: str,
        subject: str,
        reason: str,
        deadline_days: int | None = None,
    ) -> ReviewTicket:
        """Open a ticket for a decision routed to a human; its deadline counts working days."""
        now = self._now()
        ticket = ReviewTicket(
            id=new_id(),
            decision_id=decision_id,
            policy=policy,
            subject=subject,
            reason=reason,
            status=ReviewStatus.OPEN,
            opened_at=now,
            deadline=review_deadline(now, deadline_days or self._deadline_days, self._calendar),
        )
        self._store.add_review(ticket)
        return ticket

    def get(self, review_id: str) -> ReviewTicket:
        """The ticket; :class:`~kzai_guard.errors.UnknownRecord` if there is none."""
        return self._store.get_review(review_id)

    def pending(self) -> list[ReviewTicket]:
        """Every open ticket, oldest first."""
        return self._store.open_reviews()

    def overdue(self, at: datetime | None = None) -> list[ReviewTicket]:
        """Open tickets whose deadline has passed at ``at`` (default: now), oldest first.

        The person was owed an answer by then; escalate these. Example::

            for ticket in guard.reviews.overdue():
                page_the_duty_officer(ticket.id, ticket.deadline)
        """
        when = self._now() if at is None else at
        return [t for t in self._store.open_reviews() if is_overdue(t, when)]

    def complete(
        self,
        review_id: str,
        *,
        reviewer: Reviewer,
        outcome: ReviewOutcome | str,
        note: str | None = None,
    ) -> ReviewTicket:
        """Record a human's decision on an open ticket, with who made it."""
        return self._finish(self._store.complete_review, review_id, reviewer, outcome, note)

    def decide(
        self,
        review_id: str,
        *,
        reviewer: Reviewer,
        outcome: ReviewOutcome | str,
        note: str | None = None,
    ) -> ReviewTicket:
        """:meth:`complete` for a ticket worked through the reviewer's queue: refused with
        :class:`~kzai_guard.errors.ReviewConflict` unless ``reviewer`` holds its claim."""
        return self._finish(self._store.decide_review, review_id, reviewer, outcome, note)

    def _finish(
        self,
        write: Callable[..., ReviewTicket],
        review_id: str,
        reviewer: Reviewer,
        outcome: ReviewOutcome | str,
        note: str | None,
    ) -> ReviewTicket:
        if not isinstance(reviewer, Reviewer) or not reviewer.id:
            raise ValueError("complete() needs an identified Reviewer(id=...)")
        check_text(reviewer.id, "reviewer id", 256)
        if note is not None:
            check_text(note, "note", 4000, multiline=True)
        ticket = write(
            review_id,
            reviewer=reviewer.id,
            outcome=ReviewOutcome(outcome),
            note=note,
            at=self._now(),
        )
        self._auditor.event(
            EventKind.REVIEW_COMPLETED,
            subject=ticket.subject,
            policy=ticket.policy,
            reviewer=reviewer.id,
            review_id=ticket.id,
            detail=ticket.outcome.value if ticket.outcome else None,
        )
        return ticket
