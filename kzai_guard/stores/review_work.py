"""The reviewer's work in the SQL stores: claims with leases, escalations, overrides.

:class:`ReviewWorkQueries` is part of :class:`~kzai_guard.stores.sql.SqlStore`; each check runs
inside the same write transaction as its write, so of two racing claims exactly one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from kzai_guard.core.oversight import ConflictReason, OverrideAction, ReviewerOverride, ReviewWork
from kzai_guard.core.review import ReviewOutcome, ReviewStatus, ReviewTicket
from kzai_guard.errors import ReviewConflict, UnknownRecord
from kzai_guard.stores.rows import _REVIEW_COLUMNS, _dt, _dt_or_none, _ticket, _us
from kzai_guard.stores.sql_queries import SqlQueries

__all__ = ["WORK_SCHEMA", "ReviewWorkQueries"]


class ReviewWorkQueries(SqlQueries):
    """The reviewer's store methods, over the store's own reads and writes."""

    if TYPE_CHECKING:

        def get_review(self, review_id: str) -> ReviewTicket: ...

    def claim_review(
        self, review_id: str, *, reviewer: str, at: datetime, lease_until: datetime
    ) -> ReviewWork:
        self._write(
            [
                (
                    "INSERT INTO kzg_review_work (review_id, reviewer, claimed_at, lease_until) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (review_id) DO UPDATE SET "
                    "reviewer = excluded.reviewer, claimed_at = excluded.claimed_at, "
                    "lease_until = excluded.lease_until",
                    (review_id, reviewer, _us(at), _us(lease_until)),
                )
            ],
            select=(_WORK_STATE, (review_id,)),
            check=partial(_refuse, review_id, reviewer, _us(at)),
        )
        return self.review_work([review_id])[review_id]

    def release_review(self, review_id: str, *, reviewer: str) -> None:
        self._write(
            [
                (
                    "UPDATE kzg_review_work SET reviewer = NULL, claimed_at = NULL, "
                    "lease_until = NULL WHERE review_id = ?",
                    (review_id,),
                )
            ],
            select=(_WORK_STATE, (review_id,)),
            check=partial(_refuse, review_id, reviewer, None),
        )

    def escalate_review(
        self, review_id: str, *, reviewer: str, reason: str, at: datetime
    ) -> ReviewWork:
        self._write(
            [
                (
                    "INSERT INTO kzg_review_work (review_id, escalated_by, escalated_at, "
                    "escalation_reason) VALUES (?, ?, ?, ?) ON CONFLICT (review_id) DO UPDATE SET "
                    "reviewer = NULL, claimed_at = NULL, lease_until = NULL, "
                    "escalated_by = excluded.escalated_by, escalated_at = excluded.escalated_at, "
                    "escalation_reason = excluded.escalation_reason",
                    (review_id, reviewer, _us(at), reason),
                )
            ],
            select=(_WORK_STATE, (review_id,)),
            check=partial(_refuse, review_id, reviewer, _us(at)),
        )
        return self.review_work([review_id])[review_id]

    def decide_review(
        self,
        review_id: str,
        *,
        reviewer: str,
        outcome: ReviewOutcome,
        note: str | None,
        at: datetime,
    ) -> ReviewTicket:
        self._write(
            [
                (
                    "UPDATE kzg_reviews SET status = ?, reviewer = ?, outcome = ?, note = ?, "
                    "completed_at = ? WHERE id = ? AND status = ?",
                    (
                        ReviewStatus.COMPLETED.value,
                        reviewer,
                        outcome.value,
                        note,
                        _us(at),
                        review_id,
                        ReviewStatus.OPEN.value,
                    ),
                ),
                (
                    "UPDATE kzg_review_work SET reviewer = NULL, claimed_at = NULL, "
                    "lease_until = NULL WHERE review_id = ?",
                    (review_id,),
                ),
            ],
            select=(_WORK_STATE, (review_id,)),
            check=partial(_refuse, review_id, reviewer, None),
        )
        return self.get_review(review_id)

    def review_work(self, review_ids: Sequence[str]) -> dict[str, ReviewWork]:
        if not review_ids:
            return {}
        marks = ", ".join("?" for _ in review_ids)
        rows = self._read(
            f"SELECT {_WORK_COLUMNS} FROM kzg_review_work WHERE review_id IN ({marks})",
            list(review_ids),
        )
        return {r[0]: _work(r) for r in rows}

    def review_queue(
        self,
        *,
        status: ReviewStatus | None,
        policy: str | None,
        deadline_before: datetime | None,
        limit: int,
        offset: int,
    ) -> list[ReviewTicket]:
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("status = ?", None if status is None else status.value),
            ("policy = ?", policy),
            ("deadline < ?", None if deadline_before is None else _us(deadline_before)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        condition = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._read(
            f"SELECT {_REVIEW_COLUMNS} FROM kzg_reviews {condition}"
            "ORDER BY deadline, opened_at, id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_ticket(r) for r in rows]

    def add_override(self, override: ReviewerOverride) -> None:
        self._write(
            [
                (
                    f"INSERT INTO kzg_overrides ({_OVERRIDE_COLUMNS}, subject_ref) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        override.id,
                        override.decision_id,
                        override.policy,
                        override.reviewer,
                        override.action.value,
                        override.note,
                        _us(override.at),
                        override.subject_ref,
                    ),
                )
            ]
        )

    def overrides_of(self, decision_id: str) -> list[ReviewerOverride]:
        rows = self._read(
            f"SELECT {_OVERRIDE_COLUMNS}, subject_ref FROM kzg_overrides WHERE decision_id = ? "
            "ORDER BY at, id",
            (decision_id,),
        )
        return [
            ReviewerOverride(r[0], r[1], r[2], r[3], OverrideAction(r[4]), r[5], _dt(r[6]), r[7])
            for r in rows
        ]


WORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS kzg_review_work (
    review_id TEXT PRIMARY KEY, reviewer TEXT, claimed_at BIGINT, lease_until BIGINT,
    escalated_by TEXT, escalated_at BIGINT, escalation_reason TEXT);
CREATE TABLE IF NOT EXISTS kzg_overrides (
    id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, policy TEXT NOT NULL, reviewer TEXT NOT NULL,
    action TEXT NOT NULL, note TEXT, at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS kzg_overrides_decision ON kzg_overrides (decision_id, at);
CREATE INDEX IF NOT EXISTS kzg_reviews_deadline ON kzg_reviews (deadline, opened_at)
"""
"""The reviewer's work: claims and escalations of tickets, overrides of automated decisions."""
_WORK_COLUMNS = (
    "review_id, reviewer, claimed_at, lease_until, escalated_by, escalated_at, escalation_reason"
)
_WORK_STATE = (
    "SELECT r.status, w.reviewer, w.lease_until FROM kzg_reviews r "
    "LEFT JOIN kzg_review_work w ON w.review_id = r.id WHERE r.id = ?"
)
_OVERRIDE_COLUMNS = "id, decision_id, policy, reviewer, action, note, at"


def _refuse(
    review_id: str, reviewer: str, free_at: int | None, rows: list[tuple[Any, ...]]
) -> None:
    """Refuse a reviewer's write from the ticket's state, read inside the write transaction.

    With ``free_at`` (µs) the ticket must not be held by someone else at that time (claim,
    escalate); without it, ``reviewer`` must hold it (release, decide).
    """
    if not rows:
        raise UnknownRecord(f"no review ticket {review_id!r}")
    status, holder, lease = rows[0]
    if status != ReviewStatus.OPEN.value:
        raise ReviewConflict(ConflictReason.CLOSED, f"review ticket {review_id!r} is {status}")
    if free_at is None and holder != reviewer:
        raise ReviewConflict(
            ConflictReason.NOT_CLAIMED, f"review ticket {review_id!r} is not claimed by {reviewer}"
        )
    if free_at is not None and holder not in (None, reviewer) and int(lease or 0) > free_at:
        raise ReviewConflict(
            ConflictReason.CLAIMED, f"review ticket {review_id!r} is claimed by another reviewer"
        )


def _work(r: tuple[Any, ...]) -> ReviewWork:
    return ReviewWork(
        review_id=r[0],
        claimed_by=r[1],
        claimed_at=_dt_or_none(r[2]),
        lease_until=_dt_or_none(r[3]),
        escalated_by=r[4],
        escalated_at=_dt_or_none(r[5]),
        escalation_reason=r[6],
    )
