"""Tickets due soon and overdue are found by the guard's clock across weekends and Kazakh
holidays, checked against an independent day-by-day count of the law's days off."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kzai_guard as kg
from kzai_guard.testing import memory_guard
from tests.samples import GATEWAY_SUBJECT, LOAN

ALMATY = timezone(timedelta(hours=5))
HOLIDAYS = {
    (1, 1): True,
    (1, 2): True,
    (1, 7): False,
    (3, 8): True,
    (3, 21): True,
    (3, 22): True,
    (3, 23): True,
    (5, 1): True,
    (5, 7): True,
    (5, 9): True,
    (7, 6): True,
    (8, 30): True,
    (10, 25): True,
    (12, 16): True,
}
"""The Law "On holidays": (month, day) -> whether a weekend falling on it gives a day off."""
REVIEWER = kg.Reviewer(id="officer-7")


def days_off(year: int) -> set[date]:
    """Every day off of ``year`` but weekends, by walking the year: each carried holiday on a
    weekend is owed, and paid on the next weekday that is no holiday itself."""
    off: set[date] = set()
    owed = 0
    day = date(year, 1, 1)
    while day.year == year:
        weekend = day.weekday() >= 5
        carries = HOLIDAYS.get((day.month, day.day))
        if carries is not None:
            off.add(day)
            owed += 1 if carries and weekend else 0
        elif not weekend and owed:
            off.add(day)
            owed -= 1
        day += timedelta(days=1)
    return off


_OFF: dict[int, set[date]] = {}


def working(day: date) -> bool:
    if day.year not in _OFF:
        _OFF[day.year] = days_off(day.year)
    return day.weekday() < 5 and day not in _OFF[day.year]


def end_of_working_days(moment: datetime, count: int) -> datetime:
    """The end (local midnight, in UTC) of the ``count``-th working day after ``moment``'s
    local day."""
    day = moment.astimezone(ALMATY).date()
    while count:
        day += timedelta(days=1)
        count -= working(day)
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ALMATY).astimezone(UTC)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked() -> Iterator[tuple[kg.Guard, kg.MemorySink, Clock]]:
    clock = Clock()
    guard, sink = memory_guard(
        [LOAN],
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        clock=clock,
        deadline_check_seconds=None,
    )
    yield guard, sink, clock
    guard.close()


def test_the_walk_agrees_with_the_published_days_off_of_2026() -> None:
    # Nauryz 21-22 March fall on a weekend: the 24th and 25th are off; 8 March (a Sunday)
    # gives the 9th; Constitution Day (Sunday 30 August) gives the 31st.
    assert {date(2026, 3, 9), date(2026, 3, 24), date(2026, 3, 25), date(2026, 8, 31)} <= (
        days_off(2026)
    )
    assert date(2026, 3, 26) not in days_off(2026)


moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 20), timezones=st.just(UTC)
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    opened=moments,
    elapsed_minutes=st.integers(min_value=0, max_value=20 * 24 * 60),
    deadline_days=st.integers(min_value=1, max_value=10),
)
def test_a_ticket_is_overdue_exactly_after_the_end_of_its_last_working_day(
    clocked: tuple[kg.Guard, kg.MemorySink, Clock],
    opened: datetime,
    elapsed_minutes: int,
    deadline_days: int,
) -> None:
    guard, _, clock = clocked
    clock.now = opened
    ticket = guard.reviews.open(
        decision_id="d",
        policy="loan_approval",
        subject="A-1",
        reason="objection",
        deadline_days=deadline_days,
    )
    clock.now = opened + timedelta(minutes=elapsed_minutes)

    states = {d.ticket.id: d.state for d in guard.deadlines.due()}
    found = [f for f in guard.deadlines.sweep() if f.review_id == ticket.id]
    guard.reviews.complete(ticket.id, reviewer=REVIEWER, outcome="approved")

    deadline = end_of_working_days(opened, deadline_days)
    if clock.now > deadline:
        expected = kg.DeadlineState.OVERDUE
    elif deadline <= end_of_working_days(clock.now, 1):
        expected = kg.DeadlineState.DUE_SOON
    else:
        expected = None
    assert ticket.deadline == deadline
    assert states.get(ticket.id) == expected
    assert [f.state for f in found] == ([] if expected is None else [expected])
