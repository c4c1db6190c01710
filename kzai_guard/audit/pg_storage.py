"""The audit log in PostgreSQL, for services that write one log from many hosts.

Four tables (prefix ``kzg_log_``) hold the log:

- ``kzg_log_head``: one coordination row, the head (origin, size, hash of the last line, the
  tree's right edge, the newest signed checkpoint, an erasure counter, the log's ``format``,
  :mod:`kzai_guard.audit.leaf`, fixed when the row is made: 1 for tables made before it);
- ``kzg_log_entries``: ``(seq, line)``, the canonical lines;
- ``kzg_log_tree``: ``(level, index, hash)``, every completed subtree of ``2**level`` leaves
  (level 1 up; the leaves are the leaf hashes of the lines, recomputed by readers);
- ``kzg_log_checkpoints``: every signed checkpoint note, its size and when it was signed.

Sequencing follows the database drivers of transparency-dev/tessera: a writer appends a batch
in a transaction that locks the head row (``SELECT ... FOR UPDATE``), so writers on every host
take turns; it encodes its lines against the head it locked, inserts them and their tree nodes
(one statement below 256 lines, ``COPY`` from there on), moves the head and commits before
:meth:`~kzai_guard.audit.pg_appending.PostgresAppending.append` returns, then locks the head
again for what the hold does next (a checkpoint, committed with the next append or when the
hold ends). Commits under the lock do not wait for the disk; a durable append then waits for
the WAL flush outside the lock (:meth:`PostgresLogStorage._flush`), so writers share fsyncs. A
crash of the database server may lose the newest non-durable commits, never a part of one,
never a hole in the log.

When the connection breaks, the transaction was not committed: the writer's next batch
reconnects (with backoff) and reads the head again. A connection that breaks *during* the
commit leaves the outcome unknown; the storage then reconnects, waits for the head lock (so any
half-finished transaction has ended) and looks whether the batch's last line is there, so that
a batch is reported written exactly when it was, and never written twice.

Schema creation runs under a transaction-scoped advisory lock, so any number of processes may
open the log at once on an empty database. Connections are made in the process that uses them:
after a fork the inherited connection is dropped without a word to the server (psycopg does
not close a connection from a process that did not open it), and a new one is made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from kzai_guard.audit.adoption import tail_mark
from kzai_guard.audit.checkpoint import Checkpoint
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.leaf import DEFAULT_FORMAT, check_format
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.pg_adoption import (
    MARK_SCHEMA,
    WRITERS_LOCK,
    HeadWatch,
    judge_postgres,
    refuse,
)
from kzai_guard.audit.pg_appending import PostgresAppending, lock_head
from kzai_guard.audit.storage import EMPTY_PREV
from kzai_guard.errors import AuditLogError, AuditUnavailable, ConfigurationError

__all__ = ["PostgresLogStorage", "connect_postgres", "is_postgres_url", "redact_url"]

_log = logging.getLogger("kzai_guard.audit")

SCHEMA_LOCK = 0x6B7A_675F_6C6F_6701
"""The advisory lock key held while the log's tables are created."""
_HEAD_ID = 1
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kzg_log_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        origin text NOT NULL,
        size bigint NOT NULL,
        prev bytea NOT NULL,
        edge bytea NOT NULL,
        checkpoint text,
        checkpoint_time double precision NOT NULL,
        erasures bigint NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS kzg_log_entries (seq bigint PRIMARY KEY, line bytea NOT NULL)",
    """CREATE TABLE IF NOT EXISTS kzg_log_tree (
        level smallint NOT NULL, index bigint NOT NULL, hash bytea NOT NULL,
        PRIMARY KEY (level, index))""",
    """CREATE TABLE IF NOT EXISTS kzg_log_checkpoints (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        size bigint NOT NULL, note text NOT NULL, signed_at double precision NOT NULL)""",
    MARK_SCHEMA,
    # tables made before format 2 hold format-1 logs
    "ALTER TABLE kzg_log_head ADD COLUMN IF NOT EXISTS format smallint NOT NULL DEFAULT 1",
)
_CONNECT_ATTEMPTS = 4
_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 2.0
_SESSION = (
    # a writer that vanished or went silent mid-transaction must not hold the head row for
    # long, and its transaction ends (rolled back) before a sync decision waiting on it gives
    # up (kzai_guard.gate.DURABLE_WAIT_S): what the decision is told is what the log holds
    "SET idle_in_transaction_session_timeout = '4s'",
    # commits under the head lock do not wait for the disk; _FLUSH waits, outside the lock
    "SET synchronous_commit = off",
    # held while this writer is open: the last one to close (no other session holds it) may
    # delete the writing mark (kzai_guard.audit.pg_adoption)
    f"SELECT pg_advisory_lock_shared({WRITERS_LOCK})",
)
_FLUSH = (
    "SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'kzai-guard', 'flush')"
)


def is_postgres_url(where: object) -> bool:
    """Whether ``where`` names a PostgreSQL database rather than a log directory."""
    return isinstance(where, str) and where.startswith(("postgresql://", "postgres://"))


def connect_postgres(url: str, **options: Any) -> Any:
    """A new psycopg connection to ``url``; a :class:`ConfigurationError` names the extra."""
    try:
        import psycopg
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            "an audit log in PostgreSQL needs psycopg: pip install 'kzai-guard[postgres]'"
        ) from exc
    return psycopg.connect(
        url, keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3, **options
    )


class PostgresLogStorage:
    """A :class:`~kzai_guard.audit.storage.LogStorage` in a PostgreSQL database.

    >>> storage = PostgresLogStorage("postgresql://db/app")  # doctest: +SKIP
    >>> with storage.sequence() as appending:  # doctest: +SKIP
    ...     appending.append(lines, hashes, nodes, durable=True)

    ``origin`` names a new log (default: a random one) and must match an existing one.
    ``in_doubt_s`` bounds how long a commit whose outcome is unknown is looked into before the
    storage gives up and refuses every later batch (see the module's docstring).
    Raises :class:`~kzai_guard.errors.AuditLogError` if the database cannot be used.
    """

    def __init__(
        self,
        url: str,
        *,
        origin: str | None = None,
        in_doubt_s: float = 60.0,
        log_format: int = DEFAULT_FORMAT,
    ) -> None:
        self.url = url
        self._where = redact_url(url)
        self._in_doubt_s = in_doubt_s
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0
        self._doubt: str | None = None
        """Why the storage refuses to write: a batch whose outcome could not be settled."""
        self._closed = False
        self._key: Callable[[], Signer] | None = None
        self._keyring: Keyring | None = None
        self._tail_limit = 0
        self.watch: HeadWatch | None = None
        """Checks each head row a hold takes, once the log was judged at open."""
        try:
            self.origin, self.format = self._prepare(origin, check_format(log_format))
        except ConfigurationError:
            self._drop(close=True)
            raise
        except Exception as exc:
            self._drop(close=True)
            raise AuditLogError(f"cannot open the audit log at {self._where}: {exc}") from exc

    # ------------------------------------------------------------------ honest records

    def vouch_with(self, key: Callable[[], Signer], keyring: Keyring, tail_limit: int) -> None:
        """Mark writing with ``key()`` (the writer's current key), and judge the tables with
        ``keyring`` and ``tail_limit`` (the writers' ``checkpoint_every``) before anything is
        signed over them; see :mod:`kzai_guard.audit.pg_adoption`."""
        self._key = key
        self._keyring = keyring
        self._tail_limit = tail_limit

    def judge(self, appending: PostgresAppending) -> None:
        """Raise :class:`~kzai_guard.errors.AuditLogError` unless the tables hold only what
        writers wrote (call under :meth:`sequence`); from then on each head row a hold takes
        is checked too."""
        if self._keyring is None or self._key is None:
            return
        keyring = self._keyring
        keyring.add(self._key().public_key)
        found = judge_postgres(
            appending.conn,
            appending.head,
            keyring,
            origin=self.origin,
            tail_limit=self._tail_limit,
        )
        refuse(found, self._where)
        watch = HeadWatch()
        watch.check(appending.head)
        self.watch = watch

    def mark_writing(self, appending: PostgresAppending) -> None:
        """Sign "a writer appends after the newest checkpoint", committed durably when the
        hold ends (call under :meth:`sequence`, once a checkpoint covers the head)."""
        head = appending.head
        if self._key is None or head.size != head.checkpoint_size:
            return
        root = CompactRange(head.size, head.edge).root()
        mark = tail_mark(Checkpoint(self.origin, head.size, root), self._key())
        appending.conn.execute(
            "INSERT INTO kzg_log_writing (id, mark) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET mark = excluded.mark",
            (mark,),
        )
        appending.pending = appending.pending_durable = True

    # ------------------------------------------------------------------ the LogStorage API

    @contextlib.contextmanager
    def sequence(self) -> Iterator[PostgresAppending]:
        """Lock the head row for one batch; commit what is left when the block ends.

        Each :meth:`PostgresAppending.append` commits its lines before it returns and locks
        the head again. Raises :class:`~kzai_guard.errors.AuditUnavailable` when the database
        cannot be reached or a transaction fails; what was not committed was not written.
        """
        with self._lock:
            if self._closed:
                raise AuditUnavailable(f"the audit log at {self._where} is closed")
            if self._doubt is not None:
                raise AuditUnavailable(self._doubt)
            try:
                appending = self._lock_head()
                if self.watch is not None:
                    self.watch.check(appending.head)
            except Exception as exc:
                self._abandon()
                raise self._unavailable(exc) from exc
            try:
                yield appending
            except BaseException as exc:
                self._abandon()
                if _is_database_error(exc):
                    raise self._unavailable(exc) from exc
                raise
            if appending.broken is not None:
                self._abandon()
                raise self._unavailable(appending.broken)
            if appending.pending:
                self._commit(appending.conn, appending.pending_durable, None)
            else:
                # nothing to store: only the lock to release, which a lost connection did
                self._abandon()

    def after_fork(self) -> None:
        """Forget the connection inherited from the parent, without closing the parent's."""
        self._lock = threading.Lock()
        self._drop(close=False)

    def close(self) -> None:
        """Close the connection; later batches raise ``AuditUnavailable``.

        The last writer to close, every record covered by a checkpoint, deletes the writing
        mark: records found after the newest checkpoint at the next open were then not left
        by a crash, and are refused."""
        self._closed = True
        with self._lock:
            if self.watch is not None and self._doubt is None:
                with contextlib.suppress(Exception):
                    self._leave()
            self._drop(close=True)

    def _leave(self) -> None:
        """Delete the writing mark if no other writer's session is open and all is covered."""
        conn = self._conn
        if conn is None or self._pid != os.getpid() or conn.closed:
            return  # a lost session: the mark stays, as after a crash
        conn.rollback()
        last = conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITERS_LOCK,)).fetchone()[0]
        if last:
            head = lock_head(conn)
            if head.size == head.checkpoint_size:
                conn.execute("DELETE FROM kzg_log_writing WHERE id = 1")
        conn.commit()

    # ------------------------------------------------------------------ connections

    def _lock_head(self) -> PostgresAppending:
        """Begin a batch: lock the head row, on a new connection if the kept one is dead.

        A connection that sat idle may have been closed by the server (a restart, a
        terminated backend) without the client knowing: one more try on a fresh connection
        costs nothing, since nothing was written yet.
        """
        reused = self._conn is not None and self._pid == os.getpid()
        conn = self._connection()
        try:
            return PostgresAppending(self, conn, lock_head(conn))
        except Exception as exc:
            if not reused or not _is_connection_error(exc):
                raise
        self._drop(close=True)
        conn = self._connection()
        return PostgresAppending(self, conn, lock_head(conn))

    def _connection(self) -> Any:
        """The connection of this process, made (again) with backoff if needed."""
        if self._conn is not None and self._pid == os.getpid() and not self._conn.closed:
            return self._conn
        self._drop(close=self._pid == os.getpid())
        delay = _BACKOFF_FIRST_S
        for attempt in range(_CONNECT_ATTEMPTS):
            try:
                conn = connect_postgres(self.url, connect_timeout=5)
                for statement in _SESSION:
                    conn.execute(statement)
                conn.commit()
            except ConfigurationError:
                raise
            except Exception:
                if attempt == _CONNECT_ATTEMPTS - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            self._conn, self._pid = conn, os.getpid()
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self, *, close: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and close and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                conn.close()

    def _abandon(self) -> None:
        """Roll back the open transaction, or drop a connection that cannot."""
        conn = self._conn
        if conn is None:
            return
        try:
            conn.rollback()
        except Exception:
            self._drop(close=True)

    def _unavailable(self, exc: BaseException) -> AuditUnavailable:
        return AuditUnavailable(f"the audit log at {self._where} cannot be written: {exc}")

    def _prepare(self, wanted: str | None, log_format: int) -> tuple[str, int]:
        """Create the tables (once, under the advisory lock); settle the origin and format."""
        conn = self._connection()
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute(
            "SELECT origin, format FROM kzg_log_head WHERE id = %s", (_HEAD_ID,)
        ).fetchone()
        if row is None:
            origin = wanted or f"kzai-guard.invalid/audit/{uuid.uuid4().hex[:16]}"
            if "\n" in origin or not origin.strip():
                raise ConfigurationError("the log origin must be one non-empty line")
            conn.execute(
                "INSERT INTO kzg_log_head (id, origin, size, prev, edge, checkpoint, "
                "checkpoint_time, erasures, format) VALUES (%s, %s, 0, %s, '', NULL, 0, 0, %s)",
                (_HEAD_ID, origin, EMPTY_PREV, log_format),
            )
        else:
            origin = str(row[0])
            try:
                log_format = check_format(row[1])
            except ValueError as exc:
                raise AuditLogError(f"the audit log at {self._where}: {exc}") from None
            if wanted is not None and wanted != origin:
                raise ConfigurationError(
                    f"the audit log at {self._where} has origin {origin!r}, not {wanted!r}; "
                    "pass the existing origin or use another database"
                )
        conn.commit()
        return origin, log_format

    def _commit(self, conn: Any, durable: bool, last: tuple[int, bytes] | None) -> None:
        """Commit the open transaction; ``last`` (size, last line) settles a broken commit.

        The commit does not wait for the disk, so the head lock is free for the next writer at
        once; a ``durable`` commit then waits for the WAL flush outside the lock
        (:meth:`_flush`), where the flushes of several writers share one fsync. Returns once
        the transaction is committed (and durable if asked); raises
        :class:`~kzai_guard.errors.AuditUnavailable` if it was not, or cannot be told.
        """
        try:
            conn.commit()
        except Exception as exc:
            self._drop(close=True)
            if last is None or not _is_connection_error(exc) or not self._settle(*last, exc):
                raise self._unavailable(exc) from exc
            return  # settling flushed it
        if durable:
            try:
                self._flush(conn)
            except Exception as exc:
                # the batch is committed: only settling may say otherwise (a server crash)
                self._drop(close=True)
                if last is None or not self._settle(*last, exc):
                    raise self._unavailable(exc) from exc

    @staticmethod
    def _flush(conn: Any) -> None:
        """Wait until every transaction committed so far is on disk.

        The transaction writes one small WAL record (a logical decoding message, prefix
        ``kzai-guard``, which no table holds and any role may write), so that its synchronous
        commit waits for the WAL to be flushed up to its commit record, which covers every
        commit before it; a transaction that wrote no WAL would not wait.
        """
        conn.execute(_FLUSH)
        conn.commit()

    def _settle(self, end: int, last_line: bytes, cause: BaseException) -> bool:
        """Whether the batch ending at seq ``end - 1`` with ``last_line`` was committed.

        Called when the commit's connection broke: reconnects (for up to ``in_doubt_s``),
        waits for the head lock so that the broken transaction has ended one way or the
        other, and looks. If it cannot tell, the storage refuses every later batch: writing
        the batch again might write it twice.
        """
        deadline = time.monotonic() + self._in_doubt_s
        while not self._closed:
            try:
                conn = self._connection()
                head = lock_head(conn)
                found = None
                if head.size >= end:
                    row = conn.execute(
                        "SELECT line FROM kzg_log_entries WHERE seq = %s", (end - 1,)
                    ).fetchone()
                    found = row is not None and bytes(row[0]) == last_line
                if found:
                    self._flush(conn)  # found, and on disk
                else:
                    conn.rollback()
            except Exception:
                self._abandon()
                if time.monotonic() >= deadline:
                    break
                time.sleep(_BACKOFF_MAX_S)
                continue
            _log.warning(
                "audit log at %s: the commit of records up to seq %d broke off (%s); it %s",
                self._where,
                end - 1,
                cause,
                "had been committed" if found else "had not been committed",
            )
            return bool(found)
        self._doubt = (
            f"the audit log at {self._where} cannot tell whether the records up to seq "
            f"{end - 1} were committed ({cause}); it refuses further records so as not to "
            "write any twice: restart the process once the database is reachable"
        )
        _log.error("%s", self._doubt)
        return False


def _is_database_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("psycopg")


def _is_connection_error(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


def redact_url(url: str) -> str:
    """``url`` without its user name and password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ModuleNotFoundError:
        return "PostgreSQL"
    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "PostgreSQL"
    host = info.get("host", "localhost")
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{host}{port}/{info.get('dbname', '')}"
