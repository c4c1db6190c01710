"""Per-subject keys (crypto-shredding) in PostgreSQL, shared by every process and host.

One table, ``kzg_subject_keys (ref, key)``. A key is made by whichever writer first seals a
record of its subject: :meth:`PostgresSubjectKeys.prefetch` (called once per batch, before the
batch is encoded) looks the batch's keys up and inserts the missing ones with ``ON CONFLICT DO
NOTHING`` in a synchronously committed transaction, then reads back the winners. So two hosts
that meet a new subject at once agree on one key, and the key is durable before any record is
sealed under it.

Erasure is a ``DELETE`` that also bumps a generation counter (``kzg_subject_key_erasures``);
every process checks the counter once per batch and drops its cached keys when it moved, so a
key erased on one host is used by no other for a later batch. The deleted key's bytes stay in
PostgreSQL's dead tuples, its WAL and its backups until ``VACUUM`` and the rotation of WAL
archives and backups remove them; see ``docs/privacy.md`` for what the operator must do.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from typing import Any

from kzai_guard.audit.pg_storage import SCHEMA_LOCK, connect_postgres
from kzai_guard.audit.subject_keys import KEY_SIZE
from kzai_guard.errors import AuditLogError

__all__ = ["PostgresSubjectKeys"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kzg_subject_keys (ref text PRIMARY KEY, key bytea NOT NULL)",
    """CREATE TABLE IF NOT EXISTS kzg_subject_key_erasures (
        id smallint PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)""",
    "INSERT INTO kzg_subject_key_erasures VALUES (1, 0) ON CONFLICT DO NOTHING",
)
_CACHE_LIMIT = 65_536


class PostgresSubjectKeys:
    """A :class:`~kzai_guard.audit.shredding.BatchedSubjectKeys` in a PostgreSQL database.

    >>> keys = PostgresSubjectKeys("postgresql://db/app")  # doctest: +SKIP
    >>> keys.erase("sk:0123")  # from any host: no process seals or reads with it again

    The connection is made in the process that uses the store (again after a fork, or when it
    breaks). Raises :class:`~kzai_guard.errors.AuditLogError` if the database cannot be used.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0
        self._cache: dict[str, bytes] = {}
        self._generation = -1
        try:
            with self._lock, self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
        except AuditLogError:
            raise
        except Exception as exc:
            raise AuditLogError(f"cannot open the subject key store: {exc}") from exc

    def key_for(self, ref: str, create: bool = True) -> bytes | None:
        """The key for ``ref``; made (durably, agreed across hosts) if absent and ``create``.

        Without ``create`` (a reader) the database is asked every time, since the key may
        have been erased by another process since it was cached.
        """
        if create:
            key = self._cache.get(ref)
            if key is None:
                self.prefetch([ref])
                key = self._cache.get(ref)
            return key
        with self._lock, self._transaction() as conn:
            row = conn.execute("SELECT key FROM kzg_subject_keys WHERE ref = %s", (ref,)).fetchone()
        return None if row is None else bytes(row[0])

    def prefetch(self, refs: Iterable[str]) -> None:
        """Find, or make, the keys of ``refs`` in a few statements; drop stale cached keys.

        The log prefetches exactly the references it is about to seal records for, so the
        missing keys are made here, in one durable transaction, not one at a time later.
        """
        with self._lock, self._transaction() as conn:
            row = conn.execute("SELECT generation FROM kzg_subject_key_erasures").fetchone()
            if row[0] != self._generation or len(self._cache) > _CACHE_LIMIT:
                # a key was erased somewhere: nothing cached may be trusted to still exist
                self._cache.clear()
                self._generation = row[0]
            wanted = [ref for ref in dict.fromkeys(refs) if ref not in self._cache]
            if not wanted:
                return
            found = self._select(conn, wanted)
            missing = [ref for ref in wanted if ref not in found]
            if missing:
                fresh = [os.urandom(KEY_SIZE) for _ in missing]
                conn.execute(
                    "INSERT INTO kzg_subject_keys (ref, key) "
                    "SELECT * FROM unnest(%s::text[], %s::bytea[]) ON CONFLICT (ref) DO NOTHING",
                    (missing, fresh),
                )
            self._cache.update(found)
        if missing:
            # read back after the commit: where another host won the race, its key is the one
            with self._lock, self._transaction() as conn:
                self._cache.update(self._select(conn, missing))

    def commit(self) -> None:
        """Nothing to do: :meth:`prefetch` commits every key it makes before it returns."""

    def erase(self, ref: str) -> None:
        """Delete the key for ``ref`` and tell every process to drop its cached keys."""
        with self._lock, self._transaction() as conn:
            conn.execute("DELETE FROM kzg_subject_keys WHERE ref = %s", (ref,))
            conn.execute("UPDATE kzg_subject_key_erasures SET generation = generation + 1")
            self._cache.clear()

    def forget(self) -> None:
        """Drop the cached keys (the log's writer calls this after an erasure anywhere)."""
        with self._lock:
            self._cache.clear()

    def after_fork(self) -> None:
        """Forget the connection inherited from the parent, without closing the parent's."""
        self._lock = threading.Lock()
        self._conn = None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._cache.clear()
            if conn is not None and self._pid == os.getpid():
                with contextlib.suppress(Exception):
                    conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Any:
        """One committed transaction on this process's connection; dropped if it breaks."""
        if self._conn is None or self._pid != os.getpid() or self._conn.closed:
            self._conn = connect_postgres(self.url, connect_timeout=5)
            self._pid = os.getpid()
        conn = self._conn
        try:
            yield conn
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                self._conn = None
                with contextlib.suppress(Exception):
                    conn.close()
            raise

    @staticmethod
    def _select(conn: Any, refs: list[str]) -> dict[str, bytes]:
        rows = conn.execute(
            "SELECT ref, key FROM kzg_subject_keys WHERE ref = ANY(%s)", (refs,)
        ).fetchall()
        return {str(ref): bytes(key) for ref, key in rows}
