"""The reviewer's work on a ticket: who holds it (a claim with a lease), escalations, overrides."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["ConflictReason", "OverrideAction", "ReviewWork", "ReviewerOverride", "holder_at"]


class ConflictReason(enum.StrEnum):
    """Why the store refused a reviewer's action on a ticket."""

    CLAIMED = "claimed"
    """Another reviewer holds the ticket and their lease has not expired."""
    NOT_CLAIMED = "not-claimed"
    """The action needs the ticket's claim, and this reviewer does not hold it."""
    CLOSED = "closed"
    """The ticket is already decided."""


class OverrideAction(enum.StrEnum):
    """What a human did to an automated decision of a medium-autonomy policy (KZ-AI 17(2))."""

    CORRECT = "correct"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class ReviewWork:
    """Who works on a ticket: the claim (``claimed_by`` until ``lease_until``) and an escalation.

    A claim whose lease has passed is free for anyone to take; the holder may still decide while
    nobody else has taken it. An escalation releases the claim and stays on the ticket.
    """

    review_id: str
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    lease_until: datetime | None = None
    escalated_by: str | None = None
    escalated_at: datetime | None = None
    escalation_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewerOverride:
    """A human's correction or cancellation of an automated decision, as the person sees it."""

    id: str
    decision_id: str
    policy: str
    reviewer: str
    action: OverrideAction
    note: str | None
    at: datetime
    subject_ref: str | None = None
    """The pseudonym of the person the decision was about, when known: their erasure blanks
    the note."""


def holder_at(work: ReviewWork | None, at: datetime) -> str | None:
    """The reviewer whose claim is live at ``at``, or ``None`` when the ticket is free."""
    if work is None or work.claimed_by is None or work.lease_until is None:
        return None
    return work.claimed_by if at < work.lease_until else None
