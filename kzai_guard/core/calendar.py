"""Working days on Kazakhstan's calendar, for review deadlines (KZ-PD 19-1: 3 working days).

Public holidays are those of the Law "On holidays in the Republic of Kazakhstan"; when a secular
holiday falls on a weekend the next working day is a day off. Religious holidays with moving dates
(Kurban Ait) and the government's yearly day transfers are not computable: give them as
``extra_holidays`` / ``extra_working_days``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone

__all__ = ["KZ_FIXED_HOLIDAYS", "KZ_TIMEZONE", "WorkingCalendar", "review_deadline"]

KZ_TIMEZONE = timezone(timedelta(hours=5), "KZ")
"""Kazakhstan's single time zone (UTC+5 since 1 March 2024)."""

KZ_FIXED_HOLIDAYS: tuple[tuple[int, int, bool], ...] = (
    (1, 1, True),  # New Year
    (1, 2, True),
    (1, 7, False),  # Orthodox Christmas: no carry-over
    (3, 8, True),  # International Women's Day
    (3, 21, True),  # Nauryz
    (3, 22, True),
    (3, 23, True),
    (5, 1, True),  # Unity Day
    (5, 7, True),  # Defender of the Fatherland Day
    (5, 9, True),  # Victory Day
    (7, 6, True),  # Capital Day
    (8, 30, True),  # Constitution Day
    (10, 25, True),  # Republic Day
    (12, 16, True),  # Independence Day
)
"""(month, day, carried over to the next working day when it falls on a weekend)."""


@dataclass(frozen=True)
class WorkingCalendar:
    """Which days are working days. The default is Kazakhstan's."""

    timezone: timezone = KZ_TIMEZONE
    weekend: frozenset[int] = frozenset({5, 6})
    fixed_holidays: tuple[tuple[int, int, bool], ...] = KZ_FIXED_HOLIDAYS
    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    _cache: dict[int, frozenset[date]] = field(default_factory=dict, compare=False, repr=False)

    def holidays(self, year: int) -> frozenset[date]:
        """The days off other than weekends in ``year``, carry-overs included."""
        cached = self._cache.get(year)
        if cached is not None:
            return cached
        fixed = {date(year, month, day): carries for month, day, carries in self.fixed_holidays}
        days: set[date] = set(fixed)
        for holiday in sorted(fixed):
            if fixed[holiday] and holiday.weekday() in self.weekend:
                extra = holiday + timedelta(days=1)
                while extra.weekday() in self.weekend or extra in days:
                    extra += timedelta(days=1)
                days.add(extra)
        result = frozenset(days | {d for d in self.extra_holidays if d.year == year})
        self._cache[year] = result
        return result

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` is a working day."""
        if day in self.extra_working_days:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays(day.year)

    def add_working_days(self, start: date, count: int) -> date:
        """The ``count``-th working day after ``start``."""
        if count < 0:
            raise ValueError("count must be zero or more")
        day = start
        while count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count -= 1
        return day


def review_deadline(opened_at: datetime, working_days: int, calendar: WorkingCalendar) -> datetime:
    """The end of the ``working_days``-th working day after ``opened_at`` (local), in UTC."""
    local_day = opened_at.astimezone(calendar.timezone).date()
    last = calendar.add_working_days(local_day, working_days)
    end = datetime.combine(last + timedelta(days=1), time(0, 0), tzinfo=calendar.timezone)
    return end.astimezone(UTC)
