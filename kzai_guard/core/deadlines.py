"""Where a review ticket stands against its deadline: due soon, overdue, or neither.

A ticket is *overdue* once it is still open after its deadline, and *due soon* while it is open
and its deadline falls no later than the end of the ``warning_days``-th working day after the
day ``at`` falls on (local time): with one warning day, a ticket due at the end of today or of
the next working day is due soon. Each state is found once per ticket (see
:mod:`kzai_guard.deadlines`).
"""

from __future__ import annotations

import enum
from datetime import datetime

from kzai_guard.core.calendar import WorkingCalendar, review_deadline
from kzai_guard.core.review import ReviewStatus, ReviewTicket

__all__ = ["DeadlineState", "deadline_state", "due_soon_before"]


class DeadlineState(enum.StrEnum):
    """A ticket's standing against its deadline that someone must hear about."""

    DUE_SOON = "due_soon"
    """Open, and its deadline is within the warning's working days."""
    OVERDUE = "overdue"
    """Open after its deadline: the person is owed an answer."""


def due_soon_before(at: datetime, warning_days: int, calendar: WorkingCalendar) -> datetime:
    """The latest deadline that is due soon at ``at``: the end of the ``warning_days``-th
    working day after ``at``'s local day."""
    return review_deadline(at, warning_days, calendar)


def deadline_state(
    ticket: ReviewTicket, at: datetime, warning_days: int, calendar: WorkingCalendar
) -> DeadlineState | None:
    """``ticket``'s state at ``at``, or ``None`` while it is closed or its deadline is far."""
    if ticket.status is not ReviewStatus.OPEN:
        return None
    if at > ticket.deadline:
        return DeadlineState.OVERDUE
    if ticket.deadline <= due_soon_before(at, warning_days, calendar):
        return DeadlineState.DUE_SOON
    return None
