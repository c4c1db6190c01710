"""The embedded default: one SQLite file in WAL mode, safe for several worker processes on a host.

``memory://`` is the same store on a private in-memory database, for tests.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kzai_guard.private_files import private_sqlite
from kzai_guard.sqlite_erasure import truncate_wal
from kzai_guard.stores.sql import SqlStore

__all__ = ["SqliteDialect", "open_sqlite"]

_BUSY_TIMEOUT_MS = 10_000
_log = logging.getLogger("kzai_guard")


class SqliteDialect:
    """SQLite's spelling: ``?`` placeholders, ``BEGIN IMMEDIATE`` write transactions."""

    name = "sqlite"
    serial_primary_key = "INTEGER PRIMARY KEY AUTOINCREMENT"
    blob = "BLOB"

    def sql(self, statement: str) -> str:
        return statement

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def schema_transaction(self, conn: Any) -> Iterator[None]:
        with self.transaction(conn):  # BEGIN IMMEDIATE already admits one writer at a time
            yield

    def lost(self, conn: Any, exc: Exception) -> bool:
        return False  # a file needs no reconnecting

    def abandon(self, conn: Any) -> None:
        # SQLite keeps per-process books of the locks on each file, and a child inherits the
        # parent's: until the inherited connection is closed, a new one in the child would
        # trust them and wait for locks no process holds. Closing it releases only the child's
        # own locks (none), never the parent's. The store held its lock across the fork, so the
        # connection is between two calls.
        try:
            conn.close()
        except sqlite3.Error:
            _log.warning("kzai_guard: closing an inherited SQLite connection failed", exc_info=True)

    def after_erasure(self, conn: Any) -> None:
        """Deleted rows are overwritten (``secure_delete``); the WAL is truncated, checked."""
        truncate_wal(conn, "erasing a subject from the SQLite store")

    def ensure_column(self, conn: Any, table: str, column: str, sql_type: str) -> None:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def open_sqlite(path: str | Path | None) -> SqlStore:
    """Open (creating if needed) the SQLite store at ``path``; ``None`` for an in-memory one.

    A process forked from one that opened a file opens its own connection; an in-memory store
    cannot be reopened, so a forked child keeps its private copy of it. The file and its
    ``-wal`` and ``-shm`` are mode 0600: they hold the pseudonym key and raw subject
    identifiers.
    """
    if path is not None:
        private_sqlite(path)

    def connect() -> sqlite3.Connection:
        return _connect(path)

    return SqlStore(connect, SqliteDialect(), reconnects=path is not None)


def _connect(path: str | Path | None) -> sqlite3.Connection:
    target = ":memory:" if path is None else str(path)
    if path is not None:
        private_sqlite(path)
    conn = sqlite3.connect(
        target, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    # an erased person's rows are overwritten with zeros, not left on free pages
    conn.execute("PRAGMA secure_delete = ON")
    if path is not None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    return conn
