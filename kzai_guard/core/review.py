"""Review tickets: decisions routed to a human, and how a human completes them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Reviewer", "ReviewOutcome", "ReviewStatus", "ReviewTicket", "is_overdue"]


class ReviewStatus(enum.StrEnum):
    """Where a ticket stands."""

    OPEN = "open"
    COMPLETED = "completed"


class ReviewOutcome(enum.StrEnum):
    """What the human decided."""

    APPROVED = "approved"
    REJECTED = "rejected"
    AMENDED = "amended"


@dataclass(frozen=True, slots=True)
class Reviewer:
    """An authenticated human decision-maker, from the app's authentication, never a header.

    ``roles`` are what the app's authentication granted (its auth scopes, by default); the
    reviewer's case view shows the person's identifier only to a role the guard names.
    """

    id: str
    display_name: str | None = None
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ReviewTicket:
    """A decision waiting for, or decided by, a human.

    ``reason`` is the verdict reason that routed it (``objection``, ``vulnerable-subject``, ...).
    ``deadline`` is when the person must have an answer (3 working days by default).
    """

    id: str
    decision_id: str
    policy: str
    subject: str
    reason: str
    status: ReviewStatus
    opened_at: datetime
    deadline: datetime
    reviewer: str | None = None
    outcome: ReviewOutcome | None = None
    note: str | None = None
    completed_at: datetime | None = None


def is_overdue(ticket: ReviewTicket, at: datetime) -> bool:
    """True when ``ticket`` is still open after its deadline: the person is owed an answer."""
    return ticket.status is ReviewStatus.OPEN and at > ticket.deadline
