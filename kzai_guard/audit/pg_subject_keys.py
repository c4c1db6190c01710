"""Per-subject keys (crypto-shredding) in PostgreSQL, shared by every process and host.

One table, ``kzg_subject_keys (ref, key)``. A key is made by whichever writer first seals a
record of its subject: :meth:`PostgresSubjectKeys.prefetch` (called once per batch, before the
batch is encoded) looks the batch's keys up and inserts the missing ones with ``ON CONFLICT DO
NOTHING`` in a synchronously committed transaction, then reads back the winners. So two hosts
that meet a new subject at once agree on one key, and the key is durable before any record is
sealed under it.

Every line names its key by a reference of its own
(:func:`~kzai_guard.audit.shredding.record_ref`); table ``kzg_record_refs (ref, owner)`` maps
those to their owners. :meth:`PostgresSubjectKeys.commit` inserts a batch's entries before its
lines are written, without waiting for the flush (with the log in the same server, the log's
synchronous commit makes them durable first).

Erasure is a ``DELETE`` (of the key and of the owner's record references) that also bumps a
generation counter (``kzg_subject_key_erasures``); every process checks the counter once per
batch and drops its cached keys when it moved, so a key erased on one host is used by no other
for a later batch. The deleted key's bytes (and the index entries) stay in
PostgreSQL's dead tuples, its WAL and its backups until ``VACUUM`` and the rotation of WAL
archives and backups remove them; see ``docs/privacy.md`` for what the operator must do.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kzai_guard.audit.pg_storage import SCHEMA_LOCK, connect_postgres
from kzai_guard.audit.subject_keys import KEY_SIZE
from kzai_guard.errors import AuditLogError

__all__ = ["PostgresSubjectKeys"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kzg_subject_keys (ref text PRIMARY KEY, key bytea NOT NULL)",
    """CREATE TABLE IF NOT EXISTS kzg_subject_key_erasures (
        id smallint PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)""",
    "INSERT INTO kzg_subject_key_erasures VALUES (1, 0) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS kzg_record_refs (ref text PRIMARY KEY, owner text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS kzg_record_refs_owner ON kzg_record_refs (owner)",
)
_CACHE_LIMIT = 65_536
Result = TypeVar("Result")


class PostgresSubjectKeys:
    """A :class:`~kzai_guard.audit.shredding.BatchedSubjectKeys` in a PostgreSQL database.

    >>> keys = PostgresSubjectKeys("postgresql://db/app")  # doctest: +SKIP
    >>> keys.erase("sk:0123")  # from any host: no process seals or reads with it again

    New keys are committed synchronously, unless ``commit_with_log`` says that the records
    sealed under them are committed afterwards to the same PostgreSQL server (the log in the
    same database, as ``AuditLog.open("postgresql://...")`` makes it): the log's synchronous
    commit then makes the keys durable first, the server replaying its WAL in order, and a new
    key costs no flush of its own. Erasures are always committed synchronously.

    The connection is made in the process that uses the store (again after a fork, or when it
    breaks). Raises :class:`~kzai_guard.errors.AuditLogError` if the database cannot be used.
    """

    def __init__(self, url: str, *, commit_with_log: bool = False) -> None:
        self.url = url
        self._commit_with_log = commit_with_log
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0
        self._cache: dict[str, bytes] = {}
        self._remembered: dict[str, str] = {}
        self._generation = -1
        try:
            with self._lock:
                self._attempt(_create_schema)
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
        with self._lock:
            found = self._attempt(lambda conn: _select(conn, [ref]))
        return found.get(ref)

    def prefetch(self, refs: Iterable[str]) -> None:
        """Find, or make, the keys of ``refs`` in one transaction; drop stale cached keys.

        The log prefetches exactly the references it is about to seal records for, so the
        missing keys are made here, all at once, not one at a time later.
        """
        refs = list(refs)
        with self._lock:
            generation, found = self._attempt(lambda conn: self._find_or_make(conn, refs))
            if generation != self._generation or len(self._cache) > _CACHE_LIMIT:
                # a key was erased somewhere: nothing cached may be trusted to still exist
                self._cache.clear()
                self._generation = generation
            self._cache.update(found)

    def remember(self, refs: Iterable[tuple[str, str]]) -> None:
        """Index ``(record reference, owner)`` pairs; inserted by the next :meth:`commit`."""
        with self._lock:
            self._remembered.update(refs)

    def record_key(self, ref: str) -> bytes | None:
        """The key of the record named ``ref`` (asked of the database: it may be erased
        elsewhere)."""

        def find(conn: Any) -> bytes | None:
            row = conn.execute(
                "SELECT k.key FROM kzg_record_refs r JOIN kzg_subject_keys k ON k.ref = r.owner "
                "WHERE r.ref = %s",
                (ref,),
            ).fetchone()
            return None if row is None else bytes(row[0])

        with self._lock:
            owner = self._remembered.get(ref)
        if owner is not None:  # sealed here, not committed yet
            return self.key_for(owner, create=False)
        with self._lock:
            return self._attempt(find)

    def commit(self) -> bool:
        """Insert the record references remembered since the last commit. The keys need
        nothing: :meth:`prefetch` commits every key it makes (the winners of any race between
        hosts) before it returns; so never True."""
        with self._lock:
            remembered = list(self._remembered.items())
            if not remembered:
                return False

            def insert(conn: Any) -> None:
                # no flush of its own, as SQLite's store commits them: with the log in this
                # server, the log's synchronous commit flushes them first
                conn.execute("SET LOCAL synchronous_commit = off")
                # only for owners with a key, locked against an erasure until this commits: a
                # key erased since the batch was sealed gets no entry back
                conn.execute(
                    "INSERT INTO kzg_record_refs (ref, owner) "
                    "SELECT t.ref, t.owner FROM unnest(%s::text[], %s::text[]) AS t(ref, owner) "
                    "WHERE t.owner IN (SELECT k.ref FROM kzg_subject_keys k "
                    "WHERE k.ref = ANY(%s::text[]) FOR KEY SHARE) "
                    "ON CONFLICT (ref) DO NOTHING",
                    (
                        [r for r, _ in remembered],
                        [o for _, o in remembered],
                        list({o for _, o in remembered}),
                    ),
                )

            self._attempt(insert)
            for record, owner in remembered:
                if self._remembered.get(record) == owner:
                    del self._remembered[record]
        return False

    def erase(self, ref: str) -> None:
        """Delete the key for ``ref`` and tell every process to drop its cached keys."""

        def delete(conn: Any) -> None:
            conn.execute("DELETE FROM kzg_subject_keys WHERE ref = %s", (ref,))
            conn.execute("DELETE FROM kzg_record_refs WHERE owner = %s", (ref,))
            conn.execute("UPDATE kzg_subject_key_erasures SET generation = generation + 1")

        with self._lock:
            self._cache.clear()
            for record in [r for r, owner in self._remembered.items() if owner == ref]:
                del self._remembered[record]
            self._attempt(delete)

    def forget(self) -> None:
        """Drop the cached keys (the log's writer calls this after an erasure anywhere)."""
        with self._lock:
            self._cache.clear()

    def after_fork(self) -> None:
        """Forget the connection inherited from the parent, without closing the parent's."""
        self._lock = threading.Lock()
        self._conn = None
        self._remembered = {}  # the parent's batch, which the parent commits

    def close(self) -> None:
        """Commit the record references not yet committed, and close the connection."""
        if self._remembered:
            self.commit()
        with self._lock:
            conn, self._conn = self._conn, None
            self._cache.clear()
            if conn is not None and self._pid == os.getpid():
                with contextlib.suppress(Exception):
                    conn.close()

    def _find_or_make(self, conn: Any, refs: list[str]) -> tuple[int, dict[str, bytes]]:
        """The erasure generation, and the keys of ``refs`` not cached, made where missing."""
        row = conn.execute("SELECT generation FROM kzg_subject_key_erasures").fetchone()
        generation = int(row[0])
        cached = self._cache if generation == self._generation else {}
        wanted = [ref for ref in dict.fromkeys(refs) if ref not in cached]
        if not wanted:
            return generation, {}
        found = _select(conn, wanted)
        missing = [ref for ref in wanted if ref not in found]
        if missing:
            if self._commit_with_log:
                conn.execute("SET LOCAL synchronous_commit = off")
            fresh = dict(zip(missing, map(os.urandom, [KEY_SIZE] * len(missing)), strict=True))
            inserted = conn.execute(
                "INSERT INTO kzg_subject_keys (ref, key) "
                "SELECT * FROM unnest(%s::text[], %s::bytea[]) ON CONFLICT (ref) DO NOTHING "
                "RETURNING ref",
                (missing, list(fresh.values())),
            ).fetchall()
            made = {str(ref) for (ref,) in inserted}
            found.update((ref, fresh[ref]) for ref in made)
            lost = [ref for ref in missing if ref not in made]
            if lost:
                # another process made these meanwhile (and committed: the insert waited for
                # it); this statement's fresh snapshot sees its keys
                found.update(_select(conn, lost))
        return generation, found

    def _attempt(self, work: Callable[[Any], Result]) -> Result:
        """Run ``work`` in one committed transaction; once more on a fresh connection if a
        kept one turns out closed by the server (every use here may safely run twice)."""
        import psycopg

        for attempt in range(2):
            reused = self._conn is not None and self._pid == os.getpid() and not self._conn.closed
            if not reused:
                self._conn = connect_postgres(self.url, connect_timeout=5)
                self._pid = os.getpid()
            conn = self._conn
            try:
                result = work(conn)
                conn.commit()
                return result
            except psycopg.OperationalError:
                self._conn = None
                with contextlib.suppress(Exception):
                    conn.close()
                if attempt or not reused:
                    raise
            except BaseException:
                try:
                    conn.rollback()
                except Exception:
                    self._conn = None
                raise
        raise AssertionError("unreachable")  # pragma: no cover


def _create_schema(conn: Any) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    for statement in _SCHEMA:
        conn.execute(statement)


def _select(conn: Any, refs: list[str]) -> dict[str, bytes]:
    rows = conn.execute(
        "SELECT ref, key FROM kzg_subject_keys WHERE ref = ANY(%s)", (refs,)
    ).fetchall()
    return {str(ref): bytes(key) for ref, key in rows}
