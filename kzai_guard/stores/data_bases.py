"""The data decisions rest on, in the SQL stores: one row per decision, under the subject's
pseudonym, erased with the person together with reviewers' override notes about them.

:class:`DataBasisQueries` is part of :class:`~kzai_guard.stores.sql.SqlStore`; its schema is
its own statements (:func:`create_data_basis_schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kzai_guard.stores.base import StoredDataBasis
from kzai_guard.stores.rows import _dt, _us
from kzai_guard.stores.sql_queries import SqlQueries

if TYPE_CHECKING:
    from kzai_guard.stores.dialect import Connection, Dialect

__all__ = ["DataBasisQueries", "create_data_basis_schema", "erase_data_bases"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kzg_data_bases ("
    "decision_id TEXT PRIMARY KEY, subject_ref TEXT NOT NULL, policy TEXT NOT NULL, "
    "created_at BIGINT NOT NULL, body TEXT NOT NULL, digest TEXT NOT NULL, "
    "missing TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS kzg_data_bases_subject ON kzg_data_bases (subject_ref)",
)
_COLUMNS = "decision_id, subject_ref, policy, created_at, body, digest, missing"
_ROW = "(?, ?, ?, ?, ?, ?, ?)"


def create_data_basis_schema(conn: Connection, dialect: Dialect) -> None:
    """The data-basis table, and the overrides' ``subject_ref`` column (so that an override's
    note can be erased with the person its decision was about). Runs inside the schema
    transaction, after the reviewer's work tables exist."""
    for statement in _SCHEMA:
        conn.execute(statement)
    dialect.ensure_column(conn, "kzg_overrides", "subject_ref", "TEXT")


class DataBasisQueries(SqlQueries):
    """The data-basis store methods, over the store's own reads and writes."""

    def add_data_bases(self, bases: Sequence[StoredDataBasis]) -> None:
        """Keep ``bases`` in one statement (idempotent per decision id)."""
        if not bases:
            return
        params = [
            value
            for b in bases
            for value in (
                b.decision_id,
                b.subject_ref,
                b.policy,
                _us(b.created_at),
                b.body.decode("utf-8"),
                b.digest,
                ",".join(b.missing),
            )
        ]
        self._write(
            [
                (
                    f"INSERT INTO kzg_data_bases ({_COLUMNS}) VALUES "
                    + ", ".join([_ROW] * len(bases))
                    + " ON CONFLICT (decision_id) DO NOTHING",
                    params,
                )
            ]
        )

    def data_basis_of(self, decision_id: str) -> StoredDataBasis | None:
        """The data one decision rested on, if kept."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM kzg_data_bases WHERE decision_id = ?", (decision_id,)
        )
        if not rows:
            return None
        r = rows[0]
        missing = tuple(str(r[6]).split(",")) if r[6] else ()
        return StoredDataBasis(
            r[0], r[1], r[2], _dt(r[3]), str(r[4]).encode("utf-8"), r[5], missing
        )


def erase_data_bases(
    run: Callable[[str, Sequence[Any]], int], subject: str, subject_ref: str
) -> tuple[int, int]:
    """Inside an erasure's transaction, before the person's tickets lose their identifier:
    blank the notes of overrides of the person's decisions (known by the override's
    ``subject_ref``, a ticket of theirs, a data basis or a row-per-explanation of theirs),
    then delete their data bases. Returns (data bases, override notes) removed."""
    notes = run(
        "UPDATE kzg_overrides SET note = NULL WHERE note IS NOT NULL AND (subject_ref = ? "
        "OR decision_id IN (SELECT decision_id FROM kzg_reviews WHERE subject = ?) "
        "OR decision_id IN (SELECT decision_id FROM kzg_data_bases WHERE subject_ref = ?) "
        "OR decision_id IN (SELECT decision_id FROM kzg_explanations WHERE subject_ref = ?))",
        (subject_ref, subject, subject_ref, subject_ref),
    )
    bases = run("DELETE FROM kzg_data_bases WHERE subject_ref = ?", (subject_ref,))
    return bases, notes
