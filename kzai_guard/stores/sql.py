"""One SQL implementation of the :class:`~kzai_guard.stores.base.Store` contract.

The SQLite and PostgreSQL backends differ only in their :class:`~kzai_guard.stores.dialect.Dialect`.
Times are stored as integer microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from time import monotonic
from typing import Any, TypeVar

from kzai_guard.core.consent import (
    Consent,
    Objection,
    withdrawal_restricted,
)
from kzai_guard.core.freshness import reconnect_delay
from kzai_guard.core.review import ReviewOutcome, ReviewStatus, ReviewTicket
from kzai_guard.errors import (
    ErasureIncomplete,
    StoreError,
    UnknownRecord,
    WithdrawalRestricted,
)
from kzai_guard.forking import remake_after_fork
from kzai_guard.stores.base import (
    Change,
    ChangeKind,
    ErasedData,
    StoredExplanation,
)
from kzai_guard.stores.data_bases import (
    DataBasisQueries,
    create_data_basis_schema,
    erase_data_bases,
)
from kzai_guard.stores.deadline_findings import DEADLINE_SCHEMA, DeadlineQueries
from kzai_guard.stores.dialect import Connection, Dialect
from kzai_guard.stores.pages import (
    bucket_of,
    encode_page,
    find_entry,
    group_by_bucket,
    without_subject,
)
from kzai_guard.stores.policy_states import OUTCOME_SCHEMA, PolicyStateQueries
from kzai_guard.stores.review_work import WORK_SCHEMA, ReviewWorkQueries
from kzai_guard.stores.rows import (
    _REVIEW_COLUMNS,
    _consent,
    _dt,
    _objection,
    _ticket,
    _us,
    _us_or_none,
)
from kzai_guard.stores.watchdog import CallWatchdog

__all__ = ["SqlStore"]

_T = TypeVar("_T")
_log = logging.getLogger("kzai_guard")
_FIRST_RECONNECT_DELAY = 0.05
_LONGEST_RECONNECT_DELAY = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kzg_meta (name TEXT PRIMARY KEY, value {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS kzg_consents (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, purpose TEXT NOT NULL,
    notice_version TEXT NOT NULL, notice_digest TEXT, method TEXT NOT NULL,
    granted_at BIGINT NOT NULL, expires_at BIGINT, withdrawn_at BIGINT,
    restriction_ground TEXT, restricted_until BIGINT);
CREATE INDEX IF NOT EXISTS kzg_consents_subject ON kzg_consents (subject, purpose);
CREATE TABLE IF NOT EXISTS kzg_objections (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, policy TEXT,
    recorded_at BIGINT NOT NULL, withdrawn_at BIGINT, channel TEXT);
CREATE INDEX IF NOT EXISTS kzg_objections_subject ON kzg_objections (subject);
CREATE TABLE IF NOT EXISTS kzg_switches (
    policy TEXT PRIMARY KEY, suspended INTEGER NOT NULL, changed_at BIGINT NOT NULL,
    changed_by TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS kzg_routings (
    policy TEXT PRIMARY KEY, routed INTEGER NOT NULL, changed_at BIGINT NOT NULL,
    changed_by TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS kzg_reviews (
    id TEXT PRIMARY KEY, decision_id TEXT NOT NULL, policy TEXT NOT NULL, subject TEXT NOT NULL,
    reason TEXT NOT NULL, status TEXT NOT NULL, opened_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL, reviewer TEXT, outcome TEXT, note TEXT, completed_at BIGINT);
CREATE INDEX IF NOT EXISTS kzg_reviews_status ON kzg_reviews (status, opened_at);
CREATE TABLE IF NOT EXISTS kzg_explanations (
    decision_id TEXT PRIMARY KEY, subject_ref TEXT NOT NULL, policy TEXT NOT NULL,
    created_at BIGINT NOT NULL, body TEXT NOT NULL, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kzg_explanation_pages (
    id {serial}, bucket BIGINT NOT NULL, entries {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS kzg_explanation_pages_bucket ON kzg_explanation_pages (bucket, id);
CREATE TABLE IF NOT EXISTS kzg_changes (
    seq {serial}, kind TEXT NOT NULL, subject TEXT, at BIGINT NOT NULL);
"""

_CONSENT_COLUMNS = (
    "id, subject, purpose, notice_version, notice_digest, method, granted_at, expires_at, "
    "withdrawn_at, restriction_ground, restricted_until"
)
_ADDED_COLUMNS = (
    ("kzg_consents", "restriction_ground", "TEXT"),
    ("kzg_consents", "restricted_until", "BIGINT"),
)
"""Columns added since the first schema: stores made by earlier builds get them on open."""
_OBJECTION_COLUMNS = "id, subject, policy, recorded_at, withdrawn_at, channel"


class SqlStore(ReviewWorkQueries, DataBasisQueries, DeadlineQueries, PolicyStateQueries):
    """A store on one database connection per process, guarded by a lock (safe for many threads).

    ``connect`` makes the connection. When ``reconnects`` is true, a connection that breaks is
    dropped and made again at the next use, after a wait that grows with each failed attempt
    (:func:`~kzai_guard.core.freshness.reconnect_delay`); meanwhile every call fails at once
    with :class:`~kzai_guard.errors.StoreError`. A read that fails on a lost connection is
    retried once on a fresh one; so is a write, unless the connection broke while the write was
    committing: then it may have been stored, and the caller gets a :class:`StoreError` saying
    so rather than a second copy. The lock is held across a fork; in the child the inherited
    connection is let go without disturbing the parent's session
    (:meth:`~kzai_guard.stores.dialect.Dialect.abandon`) and a new one is made at the next use;
    a store that cannot reconnect (an in-memory database) keeps its private copy. A
    ``watchdog`` (:class:`~kzai_guard.stores.watchdog.CallWatchdog`) cuts the connection of a
    call that gets no answer within its limit; that call fails with :class:`StoreError` and is
    not retried.
    """

    def __init__(
        self,
        connect: Callable[[], Connection],
        dialect: Dialect,
        *,
        reconnects: bool = True,
        watchdog: CallWatchdog | None = None,
    ) -> None:
        self._connect = connect
        self._watchdog = watchdog
        self._dialect = dialect
        self._reconnects = reconnects
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Connection | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._last_failure = ""
        schema = _SCHEMA.format(blob=dialect.blob, serial=dialect.serial_primary_key)

        def create_schema(conn: Connection, _: _Progress) -> None:
            with dialect.schema_transaction(conn):
                _execute_script(conn, schema)
                for table, column, sql_type in _ADDED_COLUMNS:
                    dialect.ensure_column(conn, table, column, sql_type)
                _execute_script(conn, WORK_SCHEMA)
                create_data_basis_schema(conn, dialect)
                _execute_script(conn, DEADLINE_SCHEMA.format(blob=dialect.blob))
                conn.execute(OUTCOME_SCHEMA)  # stores made by earlier builds lack it

        self._use(create_schema, idempotent=True)
        remake_after_fork(self)

    # -- plumbing ---------------------------------------------------------------------------

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        sql = self._dialect.sql(statement)

        def read(conn: Connection, _: _Progress) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
            return rows

        return self._use(read, idempotent=True)

    def _write(
        self,
        steps: Sequence[tuple[str, Sequence[Any]]],
        change: tuple[ChangeKind, str | None] | None = None,
        *,
        select: tuple[str, Sequence[Any]] | None = None,
        check: Callable[[list[tuple[Any, ...]]], None] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run ``steps`` in one transaction; ``select`` runs first in it, and its rows return.

        ``check`` sees those rows before the steps run; what it raises rolls the transaction
        back and reaches the caller.
        """
        dialect = self._dialect

        def write(conn: Connection, progress: _Progress) -> list[tuple[Any, ...]]:
            with dialect.transaction(conn):
                rows: list[tuple[Any, ...]] = []
                if select is not None:
                    rows = conn.execute(dialect.sql(select[0]), select[1]).fetchall()
                if check is not None:
                    check(rows)
                for statement, params in steps:
                    conn.execute(dialect.sql(statement), params)
                if change is not None:
                    conn.execute(
                        dialect.sql("INSERT INTO kzg_changes (kind, subject, at) VALUES (?, ?, ?)"),
                        (change[0].value, change[1], _us(datetime.now(UTC))),
                    )
                progress.committing = True
            return rows

        return self._use(write, idempotent=False)

    def _use(self, work: Callable[[Connection, _Progress], _T], *, idempotent: bool) -> _T:
        """Run ``work`` on this process's connection, under the lock, retrying once on a fresh
        connection when the first one turns out lost (see the class's description)."""
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            retried = False
            while True:
                conn = self._connection()
                progress = _Progress()
                watchdog = self._watchdog
                if watchdog is not None:
                    watchdog.begin(conn)
                try:
                    return work(conn, progress)
                except (StoreError, WithdrawalRestricted, ErasureIncomplete):
                    raise
                except Exception as exc:
                    lost = self._reconnects and self._dialect.lost(conn, exc)
                    if lost:
                        self._drop(conn)
                    if watchdog is not None and watchdog.fired and not progress.committing:
                        # a silent link: another attempt would wait as long again
                        raise StoreError(
                            f"the {self._dialect.name} store gave no answer within "
                            f"{watchdog.limit:.1f}s: {exc}"
                        ) from exc
                    if lost and not retried and (idempotent or not progress.committing):
                        retried = True
                        continue
                    if lost and progress.committing:
                        raise StoreError(
                            f"the {self._dialect.name} store's connection broke while a write "
                            f"was committing; it may or may not have been stored: {exc}"
                        ) from exc
                    raise StoreError(f"{self._dialect.name} store failed: {exc}") from exc
                finally:
                    if watchdog is not None:
                        watchdog.end()

    def _connection(self) -> Connection:
        """The open connection, or a new one; fails at once while waiting to reconnect."""
        conn = self._conn
        if conn is not None:
            return conn
        now = monotonic()
        if now < self._next_attempt:
            raise StoreError(
                f"the {self._dialect.name} store is unreachable (next attempt in "
                f"{self._next_attempt - now:.2f}s): {self._last_failure}"
            )
        try:
            conn = self._connect()
        except Exception as exc:
            self._failures += 1
            self._next_attempt = monotonic() + reconnect_delay(
                self._failures, _FIRST_RECONNECT_DELAY, _LONGEST_RECONNECT_DELAY
            )
            self._last_failure = str(exc).strip() or type(exc).__name__
            raise StoreError(
                f"cannot connect to the {self._dialect.name} store: {self._last_failure}"
            ) from exc
        self._failures = 0
        self._conn = conn
        return conn

    def _drop(self, conn: Connection) -> None:
        self._conn = None
        try:
            conn.close()
        except Exception:  # a broken connection may fail to close; it is gone either way
            _log.debug("kzai_guard: closing a broken store connection failed", exc_info=True)

    def before_fork(self) -> None:
        """Hold the lock across a fork: no call is half done on the connection in the child."""
        self._lock.acquire()

    def after_fork_in_parent(self) -> None:
        """Release what :meth:`before_fork` held."""
        self._lock.release()

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock, and a new connection at the next use."""
        self._lock = threading.Lock()
        if self._reconnects and self._conn is not None:
            self._dialect.abandon(self._conn)
            self._conn = None
        self._failures = 0
        self._next_attempt = 0.0

    # -- secrets ----------------------------------------------------------------------------

    def secret(self, name: str, factory: Callable[[], bytes]) -> bytes:
        rows = self._read("SELECT value FROM kzg_meta WHERE name = ?", (name,))
        if not rows:
            self._write(
                [
                    (
                        "INSERT INTO kzg_meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        (name, factory()),
                    )
                ]
            )
            rows = self._read("SELECT value FROM kzg_meta WHERE name = ?", (name,))
        return bytes(rows[0][0])

    # -- consents ---------------------------------------------------------------------------

    def add_consent(self, consent: Consent) -> None:
        restriction = consent.withdrawal_restriction
        self._write(
            [
                (
                    f"INSERT INTO kzg_consents ({_CONSENT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        consent.id,
                        consent.subject,
                        consent.purpose,
                        consent.notice_version,
                        consent.notice_digest,
                        consent.method.value,
                        _us(consent.granted_at),
                        _us_or_none(consent.expires_at),
                        _us_or_none(consent.withdrawn_at),
                        None if restriction is None else restriction.ground,
                        None if restriction is None else _us(restriction.until),
                    ),
                )
            ],
            (ChangeKind.CONSENT, consent.subject),
        )

    def withdraw_consents(self, subject: str, purpose: str, at: datetime) -> list[Consent]:
        def refuse_if_restricted(rows: list[tuple[Any, ...]]) -> None:
            restricted = tuple(
                c.withdrawal_restriction
                for c in map(_consent, rows)
                if c.withdrawal_restriction is not None and withdrawal_restricted(c, at)
            )
            if restricted:
                raise WithdrawalRestricted(restricted)

        rows = self._write(
            [
                (
                    "UPDATE kzg_consents SET withdrawn_at = ? "
                    "WHERE subject = ? AND purpose = ? AND withdrawn_at IS NULL",
                    (_us(at), subject, purpose),
                )
            ],
            (ChangeKind.CONSENT, subject),
            select=(
                f"SELECT {_CONSENT_COLUMNS} FROM kzg_consents "
                "WHERE subject = ? AND purpose = ? AND withdrawn_at IS NULL "
                "ORDER BY granted_at, id",
                (subject, purpose),
            ),
            check=refuse_if_restricted,
        )
        return [dataclasses.replace(_consent(row), withdrawn_at=at) for row in rows]

    def consents_of(self, subject: str) -> list[Consent]:
        rows = self._read(
            f"SELECT {_CONSENT_COLUMNS} FROM kzg_consents WHERE subject = ? "
            "ORDER BY granted_at, id",
            (subject,),
        )
        return [_consent(row) for row in rows]

    # -- objections -------------------------------------------------------------------------

    def add_objection(self, objection: Objection) -> None:
        self._write(
            [
                (
                    f"INSERT INTO kzg_objections ({_OBJECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        objection.id,
                        objection.subject,
                        objection.policy,
                        _us(objection.recorded_at),
                        _us_or_none(objection.withdrawn_at),
                        objection.channel,
                    ),
                )
            ],
            (ChangeKind.OBJECTION, objection.subject),
        )

    def withdraw_objections(
        self, subject: str, policy: str | None, at: datetime
    ) -> list[Objection]:
        condition = "policy IS NULL" if policy is None else "policy = ?"
        keys: tuple[Any, ...] = (subject,) if policy is None else (subject, policy)
        rows = self._write(
            [
                (
                    "UPDATE kzg_objections SET withdrawn_at = ? "
                    f"WHERE subject = ? AND {condition} AND withdrawn_at IS NULL",
                    (_us(at), *keys),
                )
            ],
            (ChangeKind.OBJECTION, subject),
            select=(
                f"SELECT {_OBJECTION_COLUMNS} FROM kzg_objections "
                f"WHERE subject = ? AND {condition} AND withdrawn_at IS NULL "
                "ORDER BY recorded_at, id",
                keys,
            ),
        )
        return [dataclasses.replace(_objection(row), withdrawn_at=at) for row in rows]

    def objections_of(self, subject: str) -> list[Objection]:
        rows = self._read(
            f"SELECT {_OBJECTION_COLUMNS} FROM kzg_objections WHERE subject = ? "
            "ORDER BY recorded_at, id",
            (subject,),
        )
        return [_objection(r) for r in rows]

    # -- review tickets ---------------------------------------------------------------------

    def add_review(self, ticket: ReviewTicket) -> None:
        self._write(
            [
                (
                    f"INSERT INTO kzg_reviews ({_REVIEW_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ticket.id,
                        ticket.decision_id,
                        ticket.policy,
                        ticket.subject,
                        ticket.reason,
                        ticket.status.value,
                        _us(ticket.opened_at),
                        _us(ticket.deadline),
                        ticket.reviewer,
                        ticket.outcome.value if ticket.outcome else None,
                        ticket.note,
                        _us_or_none(ticket.completed_at),
                    ),
                )
            ]
        )

    def get_review(self, review_id: str) -> ReviewTicket:
        rows = self._read(f"SELECT {_REVIEW_COLUMNS} FROM kzg_reviews WHERE id = ?", (review_id,))
        if not rows:
            raise UnknownRecord(f"no review ticket {review_id!r}")
        return _ticket(rows[0])

    def complete_review(
        self,
        review_id: str,
        *,
        reviewer: str,
        outcome: ReviewOutcome,
        note: str | None,
        at: datetime,
    ) -> ReviewTicket:
        ticket = self.get_review(review_id)
        if ticket.status is not ReviewStatus.OPEN:
            raise StoreError(f"review ticket {review_id!r} is already {ticket.status.value}")
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
                )
            ]
        )
        done = self.get_review(review_id)
        if done.reviewer != reviewer or done.completed_at != at:
            raise StoreError(f"review ticket {review_id!r} was completed concurrently")
        return done

    def open_reviews(self) -> list[ReviewTicket]:
        rows = self._read(
            f"SELECT {_REVIEW_COLUMNS} FROM kzg_reviews WHERE status = ? ORDER BY opened_at, id",
            (ReviewStatus.OPEN.value,),
        )
        return [_ticket(r) for r in rows]

    # -- explanations -----------------------------------------------------------------------

    def add_explanations(self, explanations: Sequence[StoredExplanation]) -> None:
        # One row per bucket the batch touches (see kzai_guard.stores.pages), not per explanation,
        # all in one statement: one round trip and one commit, and no lock on the change feed,
        # which explanations do not touch.
        if not explanations:
            return
        rows = [
            (
                bucket,
                encode_page(
                    [
                        (
                            e.decision_id,
                            e.subject_ref,
                            e.policy,
                            _us(e.created_at),
                            e.digest,
                            e.body,
                        )
                        for e in group
                    ]
                ),
            )
            for bucket, group in group_by_bucket(explanations).items()
        ]
        statement = self._dialect.sql(
            "INSERT INTO kzg_explanation_pages (bucket, entries) VALUES "
            + ", ".join(["(?, ?)"] * len(rows))
        )
        params = [value for row in rows for value in row]

        def write(conn: Connection, _: _Progress) -> None:
            conn.execute(statement, params)

        # Idempotent: a page written twice holds the same entries, and lookups take the first.
        self._use(write, idempotent=True)

    def get_explanation(self, decision_id: str) -> StoredExplanation | None:
        pages = self._read(
            "SELECT entries FROM kzg_explanation_pages WHERE bucket = ? ORDER BY id",
            (bucket_of(decision_id),),
        )
        try:
            entry = find_entry([bytes(row[0]) for row in pages], decision_id)
        except ValueError as exc:
            raise StoreError(
                f"the explanation pages of {decision_id!r} are damaged: {exc}"
            ) from exc
        if entry is not None:
            return StoredExplanation(
                entry[0], entry[1], entry[2], _dt(entry[3]), entry[5], entry[4]
            )
        # Stores written before explanation pages kept one row per explanation.
        rows = self._read(
            "SELECT decision_id, subject_ref, policy, created_at, body, digest "
            "FROM kzg_explanations WHERE decision_id = ?",
            (decision_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return StoredExplanation(r[0], r[1], r[2], _dt(r[3]), str(r[4]).encode("utf-8"), r[5])

    # -- erasure ----------------------------------------------------------------------------

    def erase_subject(self, subject: str, subject_ref: str) -> ErasedData:
        return self._erasing(lambda conn: self._erase(conn, subject, subject_ref))

    def erase_reviewer(self, reviewer: str) -> int:
        def erase(conn: Connection) -> int:
            named = 0
            for statement in (
                "UPDATE kzg_reviews SET reviewer = '' WHERE reviewer = ?",
                "UPDATE kzg_switches SET changed_by = '' WHERE changed_by = ?",
                "UPDATE kzg_routings SET changed_by = '' WHERE changed_by = ?",
                "UPDATE kzg_review_work SET reviewer = NULL, claimed_at = NULL, "
                "lease_until = NULL WHERE reviewer = ?",
                "UPDATE kzg_review_work SET escalated_by = '' WHERE escalated_by = ?",
                "UPDATE kzg_overrides SET reviewer = '' WHERE reviewer = ?",
            ):
                cursor = conn.execute(self._dialect.sql(statement), (reviewer,))
                named += int(cursor.rowcount)
            return named

        return self._erasing(erase)

    def _erasing(self, erase: Callable[[Connection], _T]) -> _T:
        """Run ``erase`` in one transaction, then make what it deleted unreadable on disk.

        Erasure is idempotent, so a connection lost on the way is replaced and the whole of it
        runs again."""
        dialect = self._dialect

        def work(conn: Connection, _: _Progress) -> _T:
            with dialect.transaction(conn):
                done = erase(conn)
            dialect.after_erasure(conn)
            return done

        return self._use(work, idempotent=True)

    def _erase(self, conn: Connection, subject: str, subject_ref: str) -> ErasedData:
        def run(statement: str, params: Sequence[Any]) -> int:
            return int(conn.execute(self._dialect.sql(statement), params).rowcount)

        data_bases, override_notes = erase_data_bases(run, subject, subject_ref)
        consents = run("DELETE FROM kzg_consents WHERE subject = ?", (subject,))
        objections = run("DELETE FROM kzg_objections WHERE subject = ?", (subject,))
        # what a reviewer wrote about the person when escalating their ticket
        run(
            "UPDATE kzg_review_work SET escalation_reason = NULL WHERE review_id IN "
            "(SELECT id FROM kzg_reviews WHERE subject = ?)",
            (subject,),
        )
        tickets = run(
            "UPDATE kzg_reviews SET subject = '', note = NULL WHERE subject = ?", (subject,)
        )
        run("UPDATE kzg_changes SET subject = NULL WHERE subject = ?", (subject,))
        # a subject change naming nobody: every process drops the facts it cached
        run(
            "INSERT INTO kzg_changes (kind, subject, at) VALUES (?, NULL, ?)",
            (ChangeKind.CONSENT.value, _us(datetime.now(UTC))),
        )
        explanations = run("DELETE FROM kzg_explanations WHERE subject_ref = ?", (subject_ref,))
        last = -1
        while True:
            pages = conn.execute(
                self._dialect.sql(
                    "SELECT id, entries FROM kzg_explanation_pages WHERE id > ? "
                    "ORDER BY id LIMIT 512"
                ),
                (last,),
            ).fetchall()
            if not pages:
                break
            for page_id, entries in pages:
                kept, removed = without_subject(bytes(entries), subject_ref)
                if kept is None:
                    run("DELETE FROM kzg_explanation_pages WHERE id = ?", (page_id,))
                elif removed:
                    run(
                        "UPDATE kzg_explanation_pages SET entries = ? WHERE id = ?",
                        (kept, page_id),
                    )
                explanations += removed
            last = pages[-1][0]
        return ErasedData(consents, objections, tickets, explanations, data_bases, override_notes)

    # -- change feed ------------------------------------------------------------------------

    def changes_since(self, seq: int) -> list[Change]:
        rows = self._read(
            "SELECT seq, kind, subject FROM kzg_changes WHERE seq > ? ORDER BY seq", (seq,)
        )
        return [Change(int(r[0]), ChangeKind(r[1]), r[2]) for r in rows]

    def latest_change(self) -> int:
        rows = self._read("SELECT COALESCE(MAX(seq), 0) FROM kzg_changes")
        return int(rows[0][0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._watchdog is not None:
                    self._watchdog.stop()
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()


def _execute_script(conn: Connection, script: str) -> None:
    """Run each ``;``-separated statement of ``script``."""
    for statement in filter(None, (part.strip() for part in script.split(";"))):
        conn.execute(statement)


class _Progress:
    """How far one unit of work got: whether its commit had begun."""

    __slots__ = ("committing",)

    def __init__(self) -> None:
        self.committing = False
