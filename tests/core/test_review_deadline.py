"""A ticket is overdue exactly while it is open after its deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.review import ReviewStatus, ReviewTicket, is_overdue

_DEADLINE = datetime(2026, 3, 27, 19, 0, tzinfo=UTC)


def _ticket(status: ReviewStatus) -> ReviewTicket:
    return ReviewTicket(
        id="r",
        decision_id="d",
        policy="loan",
        subject="A-1",
        reason="objection",
        status=status,
        opened_at=_DEADLINE - timedelta(days=8),
        deadline=_DEADLINE,
    )


@given(st.sampled_from(ReviewStatus), st.integers(min_value=-(10**12), max_value=10**12))
def test_overdue_means_open_and_past_the_deadline(status: ReviewStatus, offset_us: int) -> None:
    at = _DEADLINE + timedelta(microseconds=offset_us)
    assert is_overdue(_ticket(status), at) is (status is ReviewStatus.OPEN and offset_us > 0)
