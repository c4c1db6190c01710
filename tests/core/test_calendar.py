"""Working days on Kazakhstan's calendar, for review deadlines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.calendar import KZ_TIMEZONE, WorkingCalendar, review_deadline

KZ = WorkingCalendar()


def test_weekends_and_fixed_holidays_are_not_working_days() -> None:
    assert not KZ.is_working_day(date(2026, 11, 28))  # Saturday
    assert not KZ.is_working_day(date(2026, 3, 23))  # Nauryz, Monday
    assert not KZ.is_working_day(date(2026, 12, 16))  # Independence Day
    assert KZ.is_working_day(date(2026, 11, 26))  # Thursday


def test_a_secular_holiday_on_a_weekend_moves_to_the_next_working_day() -> None:
    # Constitution Day, 30 August 2026, is a Sunday: Monday 31 August is off.
    assert not KZ.is_working_day(date(2026, 8, 31))
    assert KZ.is_working_day(date(2026, 9, 1))


def test_orthodox_christmas_on_a_weekend_is_not_carried_over() -> None:
    # 7 January 2029 is a Sunday; 8 January is a working day.
    assert KZ.is_working_day(date(2029, 1, 8))


def test_nauryz_on_a_weekend_pushes_the_carry_over_past_the_other_nauryz_days() -> None:
    # 21-23 March 2027: Sunday, Monday, Tuesday; the Sunday moves to Wednesday 24 March.
    assert not KZ.is_working_day(date(2027, 3, 24))
    assert KZ.is_working_day(date(2027, 3, 25))


def test_extra_holidays_and_transferred_working_days_are_honoured() -> None:
    calendar = WorkingCalendar(
        extra_holidays=frozenset({date(2026, 5, 27)}),
        extra_working_days=frozenset({date(2026, 11, 28)}),
    )
    assert not calendar.is_working_day(date(2026, 5, 27))
    assert calendar.is_working_day(date(2026, 11, 28))


def test_three_working_days_from_a_thursday_end_on_tuesday_midnight_local() -> None:
    opened = datetime(2026, 11, 26, 9, 0, tzinfo=KZ_TIMEZONE)
    deadline = review_deadline(opened, 3, KZ)
    assert deadline == datetime(2026, 12, 2, 0, 0, tzinfo=KZ_TIMEZONE)
    assert deadline.tzinfo == UTC


def test_the_local_date_decides_the_start_not_the_utc_date() -> None:
    # 20:00 UTC on Friday is already Saturday 01:00 in Kazakhstan.
    opened = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    assert review_deadline(opened, 1, KZ) == datetime(2026, 12, 1, 0, 0, tzinfo=KZ_TIMEZONE)


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        KZ.add_working_days(date(2026, 1, 5), -1)


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2040, 12, 31)), st.integers(1, 30))
def test_adding_working_days_lands_on_a_working_day_with_exactly_that_many_in_between(
    start: date, count: int
) -> None:
    end = KZ.add_working_days(start, count)
    assert KZ.is_working_day(end)
    days = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
    assert sum(KZ.is_working_day(d) for d in days) == count
