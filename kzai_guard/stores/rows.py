"""Rows of the SQL stores: times as integer microseconds; consents, objections and review
tickets from their columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kzai_guard.core.consent import CollectionMethod, Consent, Objection, WithdrawalRestriction
from kzai_guard.core.review import ReviewOutcome, ReviewStatus, ReviewTicket
from kzai_guard.errors import StoreError


def _us(at: datetime) -> int:
    if at.tzinfo is None:
        raise StoreError("times must be timezone-aware")
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _us_or_none(at: datetime | None) -> int | None:
    return None if at is None else _us(at)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def _dt_or_none(us: int | None) -> datetime | None:
    return None if us is None else _dt(us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _consent(r: tuple[Any, ...]) -> Consent:
    return Consent(
        id=r[0],
        subject=r[1],
        purpose=r[2],
        notice_version=r[3],
        notice_digest=r[4],
        method=CollectionMethod(r[5]),
        granted_at=_dt(r[6]),
        expires_at=_dt_or_none(r[7]),
        withdrawn_at=_dt_or_none(r[8]),
        withdrawal_restriction=None
        if r[9] is None
        else WithdrawalRestriction(ground=r[9], until=_dt(r[10])),
    )


def _objection(r: tuple[Any, ...]) -> Objection:
    return Objection(
        id=r[0],
        subject=r[1],
        policy=r[2],
        recorded_at=_dt(r[3]),
        withdrawn_at=_dt_or_none(r[4]),
        channel=r[5],
    )


def _ticket(r: tuple[Any, ...]) -> ReviewTicket:
    return ReviewTicket(
        id=r[0],
        decision_id=r[1],
        policy=r[2],
        subject=r[3],
        reason=r[4],
        status=ReviewStatus(r[5]),
        opened_at=_dt(r[6]),
        deadline=_dt(r[7]),
        reviewer=r[8],
        outcome=ReviewOutcome(r[9]) if r[9] else None,
        note=r[10],
        completed_at=_dt_or_none(r[11]),
    )


_REVIEW_COLUMNS = (
    "id, decision_id, policy, subject, reason, status, opened_at, deadline, reviewer, outcome, "
    "note, completed_at"
)
