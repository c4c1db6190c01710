"""Deadline findings and the webhook outbox in the SQL stores.

A finding (a ticket found due soon or overdue) is stored once per ticket and state: of two
processes that find the same one, the store keeps the first and tells the second it was already
found. Its webhook notification goes into the outbox in the same transaction, so that a crash
after the finding cannot lose the notification; delivery takes due messages with a short lease,
so that two processes do not send one message at the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from kzai_guard.core.deadlines import DeadlineState
from kzai_guard.errors import StoreError
from kzai_guard.stores.rows import _dt, _dt_or_none, _us
from kzai_guard.stores.sql_queries import SqlQueries

__all__ = [
    "DEADLINE_SCHEMA",
    "DeadlineFinding",
    "DeadlineQueries",
    "DeadlineStore",
    "OutboxMessage",
]


@dataclass(frozen=True, slots=True)
class DeadlineFinding:
    """A ticket found in a :class:`DeadlineState`. ``id`` names it everywhere: the audit
    record's id and the webhook notification's ``webhook-id``."""

    id: str
    review_id: str
    state: DeadlineState
    policy: str
    deadline: datetime
    found_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A webhook notification kept until its receiver acknowledged it."""

    id: str
    body: bytes
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class DeadlineStore(Protocol):
    """What the deadline watch needs from a store (the SQL stores have it)."""

    def record_deadline_finding(self, finding: DeadlineFinding, message: bytes | None) -> bool:
        """Keep ``finding`` (and ``message`` in the outbox) unless its ticket was already found
        in that state; True when it was new. Atomic across processes."""
        ...

    def deadline_findings(self, review_id: str | None = None) -> list[DeadlineFinding]:
        """Findings, of one ticket or all, oldest first."""
        ...

    def unaudited_deadline_findings(self, attempted_before: datetime) -> list[DeadlineFinding]:
        """Findings whose audit record is not known written and was last attempted before
        ``attempted_before``."""
        ...

    def claim_deadline_audit(
        self, finding_id: str, *, at: datetime, attempted_before: datetime
    ) -> bool:
        """Take the writing of a finding's audit record; False if someone else attempted it
        since ``attempted_before`` or it is written."""
        ...

    def mark_deadline_audited(self, finding_id: str, at: datetime) -> None:
        """Note that a finding's audit record is written."""
        ...

    def take_due_messages(
        self, *, at: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxMessage]:
        """Undelivered messages due at ``at``, each held off others until ``lease_until``."""
        ...

    def message_delivered(self, message_id: str, at: datetime) -> None:
        """Note that the receiver acknowledged a message."""
        ...

    def message_failed(
        self, message_id: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> None:
        """Note a failed attempt and when to try again."""
        ...

    def outbox(self) -> list[OutboxMessage]:
        """Every message, delivered or not, oldest first."""
        ...


class _AlreadyFound(StoreError):
    """Rolls back a write whose finding or claim another process made first."""


class DeadlineQueries(SqlQueries):
    """The deadline store methods, over the SQL store's own reads and writes."""

    def record_deadline_finding(self, finding: DeadlineFinding, message: bytes | None) -> bool:
        steps: list[tuple[str, Sequence[Any]]] = [
            (
                f"INSERT INTO kzg_deadline_findings ({_FINDING_COLUMNS}, audit_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    finding.id,
                    finding.review_id,
                    finding.state.value,
                    finding.policy,
                    _us(finding.deadline),
                    _us(finding.found_at),
                    _us(finding.found_at),
                ),
            )
        ]
        if message is not None:
            steps.append(
                (
                    "INSERT INTO kzg_webhook_outbox (id, body, created_at, attempts, "
                    "next_attempt_at) VALUES (?, ?, ?, 0, ?)",
                    (finding.id, message, _us(finding.found_at), _us(finding.found_at)),
                )
            )
        try:
            self._write(
                steps,
                select=(
                    "SELECT id FROM kzg_deadline_findings WHERE review_id = ? AND state = ?",
                    (finding.review_id, finding.state.value),
                ),
                check=_refuse_if_any,
            )
        except _AlreadyFound:
            return False
        return True

    def deadline_findings(self, review_id: str | None = None) -> list[DeadlineFinding]:
        where, params = ("", ()) if review_id is None else ("WHERE review_id = ? ", (review_id,))
        rows = self._read(
            f"SELECT {_FINDING_COLUMNS} FROM kzg_deadline_findings {where}ORDER BY found_at, id",
            params,
        )
        return [_finding(r) for r in rows]

    def unaudited_deadline_findings(self, attempted_before: datetime) -> list[DeadlineFinding]:
        rows = self._read(
            f"SELECT {_FINDING_COLUMNS} FROM kzg_deadline_findings "
            "WHERE audited_at IS NULL AND audit_attempt_at < ? ORDER BY found_at, id",
            (_us(attempted_before),),
        )
        return [_finding(r) for r in rows]

    def claim_deadline_audit(
        self, finding_id: str, *, at: datetime, attempted_before: datetime
    ) -> bool:
        try:
            self._write(
                [
                    (
                        "UPDATE kzg_deadline_findings SET audit_attempt_at = ? WHERE id = ?",
                        (_us(at), finding_id),
                    )
                ],
                select=(
                    "SELECT id FROM kzg_deadline_findings WHERE id = ? AND audited_at IS NULL "
                    "AND audit_attempt_at < ?",
                    (finding_id, _us(attempted_before)),
                ),
                check=_refuse_unless_any,
            )
        except _AlreadyFound:
            return False
        return True

    def mark_deadline_audited(self, finding_id: str, at: datetime) -> None:
        self._write(
            [
                (
                    "UPDATE kzg_deadline_findings SET audited_at = ? WHERE id = ?",
                    (_us(at), finding_id),
                )
            ]
        )

    def take_due_messages(
        self, *, at: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxMessage]:
        due = (
            "SELECT id FROM kzg_webhook_outbox WHERE delivered_at IS NULL AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id LIMIT ?"
        )
        rows = self._write(
            [
                (
                    "UPDATE kzg_webhook_outbox SET next_attempt_at = ? "
                    f"WHERE id IN (SELECT id FROM ({due}) AS due)",
                    (_us(lease_until), _us(at), limit),
                )
            ],
            select=(
                f"SELECT {_OUTBOX_COLUMNS} FROM kzg_webhook_outbox WHERE id IN "
                f"(SELECT id FROM ({due}) AS due) ORDER BY next_attempt_at, id",
                (_us(at), limit),
            ),
        )
        return [_message(r) for r in rows]

    def message_delivered(self, message_id: str, at: datetime) -> None:
        self._write(
            [
                (
                    "UPDATE kzg_webhook_outbox SET delivered_at = ?, last_error = NULL "
                    "WHERE id = ?",
                    (_us(at), message_id),
                )
            ]
        )

    def message_failed(
        self, message_id: str, *, attempts: int, next_attempt_at: datetime, error: str
    ) -> None:
        self._write(
            [
                (
                    "UPDATE kzg_webhook_outbox SET attempts = ?, next_attempt_at = ?, "
                    "last_error = ? WHERE id = ? AND delivered_at IS NULL",
                    (attempts, _us(next_attempt_at), error[:500], message_id),
                )
            ]
        )

    def outbox(self) -> list[OutboxMessage]:
        rows = self._read(
            f"SELECT {_OUTBOX_COLUMNS} FROM kzg_webhook_outbox ORDER BY created_at, id"
        )
        return [_message(r) for r in rows]


DEADLINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS kzg_deadline_findings (
    id TEXT PRIMARY KEY, review_id TEXT NOT NULL, state TEXT NOT NULL, policy TEXT NOT NULL,
    deadline BIGINT NOT NULL, found_at BIGINT NOT NULL, audit_attempt_at BIGINT NOT NULL,
    audited_at BIGINT, UNIQUE (review_id, state));
CREATE INDEX IF NOT EXISTS kzg_deadline_findings_unaudited
    ON kzg_deadline_findings (audited_at, audit_attempt_at);
CREATE TABLE IF NOT EXISTS kzg_webhook_outbox (
    id TEXT PRIMARY KEY, body {blob} NOT NULL, created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL, next_attempt_at BIGINT NOT NULL, delivered_at BIGINT,
    last_error TEXT);
CREATE INDEX IF NOT EXISTS kzg_webhook_outbox_due
    ON kzg_webhook_outbox (delivered_at, next_attempt_at)
"""
"""Deadline findings (one per ticket and state) and the webhook outbox; ``{blob}`` is the
dialect's binary type."""
_FINDING_COLUMNS = "id, review_id, state, policy, deadline, found_at"
_OUTBOX_COLUMNS = "id, body, created_at, attempts, next_attempt_at, delivered_at, last_error"


def _refuse_if_any(rows: list[tuple[Any, ...]]) -> None:
    if rows:
        raise _AlreadyFound("the ticket was already found in this state")


def _refuse_unless_any(rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        raise _AlreadyFound("the finding's audit record is written or being written")


def _finding(r: tuple[Any, ...]) -> DeadlineFinding:
    return DeadlineFinding(r[0], r[1], DeadlineState(r[2]), r[3], _dt(r[4]), _dt(r[5]))


def _message(r: tuple[Any, ...]) -> OutboxMessage:
    return OutboxMessage(
        r[0], bytes(r[1]), _dt(r[2]), int(r[3]), _dt(r[4]), _dt_or_none(r[5]), r[6]
    )
