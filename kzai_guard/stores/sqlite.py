"""The embedded default: one SQLite file in WAL mode, safe for several worker processes on a host.

``memory://`` is the same store on a private in-memory database, for tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kzai_guard.private_files import private_sqlite
from kzai_guard.sqlite_erasure import truncate_wal
from kzai_guard.stores.sql import SqlStore

__all__ = ["SqliteDialect", "open_sqlite"]

_BUSY_TIMEOUT_MS = 10_000


class SqliteDialect:
    """SQLite's spelling: ``?`` placeholders, ``BEGIN IMMEDIATE`` write transactions."""

    name = "sqlite"
    serial_primary_key = "INTEGER PRIMARY KEY AUTOINCREMENT"
    blob = "BLOB"

    def sql(self, statement: str) -> str:
        return statement

    def executemany(self, conn: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        conn.executemany(statement, rows)

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def after_erasure(self, conn: Any) -> None:
        """Deleted rows are overwritten (``secure_delete``); the WAL is truncated, checked."""
        truncate_wal(conn, "erasing a subject from the SQLite store")

    def ensure_column(self, conn: Any, table: str, column: str, sql_type: str) -> None:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def open_sqlite(path: str | Path | None) -> SqlStore:
    """Open (creating if needed) the SQLite store at ``path``; ``None`` for an in-memory one.

    The file and its ``-wal`` and ``-shm`` are mode 0600: they hold the pseudonym key and raw
    subject identifiers.
    """
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
    return SqlStore(conn, SqliteDialect())
