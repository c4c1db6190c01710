"""The reviewer's work on the queue: claim, release, escalate, decide, read a case, override.

``guard.oversight`` is what the reviewer's HTTP API and console call; every action is an audit
record. The reviewer always comes from the app's authentication (see
:mod:`kzai_guard.reviewers`), never from what a client says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from kzai_guard.audit.record import EventKind
from kzai_guard.core.explanation import localise, with_defaults
from kzai_guard.core.oversight import ReviewerOverride, ReviewWork, holder_at
from kzai_guard.core.review import Reviewer, ReviewStatus, ReviewTicket, is_overdue
from kzai_guard.core.subject import check_text
from kzai_guard.core.vocabulary import Autonomy
from kzai_guard.data_bases import shown_to_person
from kzai_guard.errors import UnknownRecord

if TYPE_CHECKING:
    from datetime import datetime

    from kzai_guard.guard import Guard

__all__ = ["MAX_PER_PAGE", "Oversight", "QueueEntry", "QueuePage"]

MAX_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One ticket in the queue, with who holds it now and whether its deadline has passed."""

    ticket: ReviewTicket
    work: ReviewWork | None
    holder: str | None
    overdue: bool


@dataclass(frozen=True, slots=True)
class QueuePage:
    """A page of the queue (``page`` counts from 1); ``has_more`` when a next page exists."""

    entries: list[QueueEntry]
    page: int
    per_page: int
    has_more: bool


class Oversight:
    """The reviewer's side of human review, on one guard."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._store = guard.store
        self._lease = timedelta(minutes=guard.settings.review_lease_minutes)

    def queue(
        self,
        *,
        status: ReviewStatus | None = ReviewStatus.OPEN,
        policy: str | None = None,
        overdue: bool = False,
        due_before: datetime | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> QueuePage:
        """Tickets by soonest deadline; ``overdue`` keeps open ones past their deadline."""
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"page must be 1 or more and per_page 1 to {MAX_PER_PAGE}")
        now = self._guard.now()
        if overdue:
            status = ReviewStatus.OPEN
            due_before = now if due_before is None else min(now, due_before)
        tickets = self._store.review_queue(
            status=status,
            policy=policy,
            deadline_before=due_before,
            limit=per_page + 1,
            offset=(page - 1) * per_page,
        )
        shown = tickets[:per_page]
        work = self._store.review_work([t.id for t in shown])
        entries = [
            QueueEntry(t, work.get(t.id), holder_at(work.get(t.id), now), is_overdue(t, now))
            for t in shown
        ]
        return QueuePage(entries, page, per_page, len(tickets) > per_page)

    def claim(self, review_id: str, reviewer: Reviewer) -> ReviewWork:
        """Take the ticket for the lease time; ``ReviewConflict`` if someone else holds it."""
        now = self._guard.now()
        work = self._store.claim_review(
            review_id, reviewer=reviewer.id, at=now, lease_until=now + self._lease
        )
        self._record(EventKind.REVIEW_CLAIMED, review_id, reviewer, None)
        return work

    def release(self, review_id: str, reviewer: Reviewer) -> None:
        """Give a claimed ticket back to the queue."""
        self._store.release_review(review_id, reviewer=reviewer.id)
        self._record(EventKind.REVIEW_RELEASED, review_id, reviewer, None)

    def escalate(self, review_id: str, reviewer: Reviewer, reason: str) -> ReviewWork:
        """Pass the ticket up, with why; the claim is released for a senior to take."""
        check_text(reason, "reason", 4000, multiline=True)
        work = self._store.escalate_review(
            review_id, reviewer=reviewer.id, reason=reason, at=self._guard.now()
        )
        self._record(EventKind.REVIEW_ESCALATED, review_id, reviewer, None)
        return work

    def decide(
        self, review_id: str, reviewer: Reviewer, outcome: str, reason: str | None
    ) -> ReviewTicket:
        """Decide a ticket this reviewer holds; the person's review route shows the outcome."""
        return self._guard.reviews.decide(
            review_id, reviewer=reviewer, outcome=outcome, note=reason
        )

    def case(self, review_id: str, reviewer: Reviewer, lang: str | None = None) -> dict[str, Any]:
        """What the reviewer needs to decide: the ticket, who holds it, the policy, the subject
        (its pseudonym unless the reviewer's role allows the identifier), the explanation and
        the data the decision rests on when the store keeps it."""
        ticket = self._store.get_review(review_id)
        now = self._guard.now()
        work = self._store.review_work([review_id]).get(review_id)
        shows_subject = self._guard.settings.reviewer_subject_role in reviewer.roles
        self._guard.auditor.event(
            EventKind.REVIEW_CASE_VIEWED,
            subject=ticket.subject,
            policy=ticket.policy,
            reviewer=reviewer.id,
            review_id=ticket.id,
            detail="subject shown" if shows_subject else "subject pseudonymised",
        )
        return {
            "ticket": ticket_json(ticket, now),
            "claim": _claim_json(work, now),
            "escalation": _escalation_json(work),
            "subject": {
                "pseudonym": self._guard.auditor.pseudonym(ticket.subject),
                "id": ticket.subject if shows_subject else None,
            },
            "policy": self._policy_json(ticket.policy),
            "explanation": self.explanation(ticket.decision_id, lang),
            "data_basis": self._data_basis(ticket.decision_id),
            "overrides": [override_json(o) for o in self._store.overrides_of(ticket.decision_id)],
        }

    def explanation(self, decision_id: str, lang: str | None = None) -> dict[str, Any] | None:
        """The decision's explanation as the person sees it, if one was kept."""
        stored = self._guard.explanations.get(decision_id)
        if stored is None:
            return None
        body: dict[str, Any] = localise(
            with_defaults(
                orjson.loads(stored.body), self._guard.explanation_defaults(stored.policy)
            ),
            lang,
        )
        return body

    def override(
        self, decision_id: str, reviewer: Reviewer, action: str, reason: str | None
    ) -> ReviewerOverride:
        """Correct or cancel an automated decision (its policy from the kept explanation or
        data basis).

        :class:`~kzai_guard.errors.UnknownRecord` when no such decision was kept;
        :class:`~kzai_guard.errors.OverrideForbidden` when its policy declares high autonomy.
        """
        guard = self._guard
        stored = guard.explanations.get(decision_id) or guard.data_bases.get(decision_id)
        if stored is None:
            raise UnknownRecord(f"no decision {decision_id!r} with a kept explanation")
        return self._guard.override(
            decision_id, policy=stored.policy, reviewer=reviewer, action=action, note=reason
        )

    def _record(
        self, kind: EventKind, review_id: str, reviewer: Reviewer, detail: str | None
    ) -> None:
        ticket = self._store.get_review(review_id)
        self._guard.auditor.event(
            kind,
            subject=ticket.subject,
            policy=ticket.policy,
            reviewer=reviewer.id,
            review_id=review_id,
            detail=detail,
        )

    def _policy_json(self, name: str) -> dict[str, Any]:
        """The policy's facts; only its name when the guard no longer declares it."""
        if name not in self._guard.policy_names:
            return {"name": name, "overridable": False}
        policy = self._guard.policy(name)
        return {
            "name": policy.name,
            "purpose": policy.purpose,
            "significance": policy.significance.value,
            "autonomy": policy.autonomy.value,
            "risk": policy.risk.value,
            "model": policy.model.label if policy.model else None,
            "overridable": policy.autonomy is Autonomy.MEDIUM,
        }

    def _data_basis(self, decision_id: str) -> dict[str, Any] | None:
        """The data a decision rested on, redacted by its policy's rules exactly as the person
        sees it (a reviewer's role shows the subject, never a withheld value)."""
        kept = self._guard.data_bases.get(decision_id)
        if kept is None:
            return None
        guard = self._guard
        policy = guard.policy(kept.policy) if kept.policy in guard.policy_names else None
        return shown_to_person(kept, policy)


def ticket_json(ticket: ReviewTicket, now: datetime) -> dict[str, Any]:
    """A ticket as the reviewer's API shows it."""
    return {
        "id": ticket.id,
        "decision_id": ticket.decision_id,
        "policy": ticket.policy,
        "reason": ticket.reason,
        "status": ticket.status.value,
        "opened_at": ticket.opened_at.isoformat(),
        "deadline": ticket.deadline.isoformat(),
        "overdue": is_overdue(ticket, now),
        "reviewer": ticket.reviewer,
        "outcome": ticket.outcome.value if ticket.outcome else None,
        "note": ticket.note,
        "completed_at": ticket.completed_at.isoformat() if ticket.completed_at else None,
    }


def override_json(override: ReviewerOverride) -> dict[str, Any]:
    """An override as the reviewer and the person see it."""
    return {
        "action": override.action.value,
        "note": override.note,
        "reviewer": override.reviewer,
        "at": override.at.isoformat(),
    }


def _claim_json(work: ReviewWork | None, now: datetime) -> dict[str, Any] | None:
    holder = holder_at(work, now)
    if work is None or holder is None or work.lease_until is None:
        return None
    return {"reviewer": holder, "lease_until": work.lease_until.isoformat()}


def _escalation_json(work: ReviewWork | None) -> dict[str, Any] | None:
    if work is None or work.escalated_at is None:
        return None
    return {
        "by": work.escalated_by,
        "at": work.escalated_at.isoformat(),
        "reason": work.escalation_reason,
    }
