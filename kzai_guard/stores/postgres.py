"""PostgreSQL backend, for services that run on several hosts (extra ``postgres``: psycopg 3).

Writers of the change feed take an exclusive lock on it for the length of their transaction, so
that change numbers become visible in order and no poller skips one. Creating or migrating the
schema takes a transaction-level advisory lock first, so that any number of processes can open
the store at once on an empty database. A broken connection is re-made (see
:class:`~kzai_guard.stores.sql.SqlStore`); unless the URL says otherwise, connecting gives up
after :data:`CONNECT_TIMEOUT_S` and TCP keepalives notice a peer that went away. Every session
bounds what the server may make it wait for (:data:`SESSION_BOUNDS`: a statement, a lock, a
transaction left open by a client that went silent); a URL's own ``options`` come after them
and win.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kzai_guard.errors import ConfigurationError
from kzai_guard.stores.sql import SqlStore
from kzai_guard.stores.watchdog import CallWatchdog

__all__ = [
    "CONNECT_TIMEOUT_S",
    "SCHEMA_LOCK_KEY",
    "SESSION_BOUNDS",
    "PostgresDialect",
    "open_postgres",
]

CONNECT_TIMEOUT_S = 5
"""How long one connection attempt may take (libpq ``connect_timeout``) unless the URL sets it."""
SCHEMA_LOCK_KEY = 0x6B7A675F736368
"""The advisory lock key that schema creation and migrations hold (``kzg_sch`` in ASCII)."""
_CONNECTION_DEFAULTS = {
    "connect_timeout": str(CONNECT_TIMEOUT_S),
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}
SESSION_BOUNDS = {
    "statement_timeout": "15s",
    "lock_timeout": "5s",
    "idle_in_transaction_session_timeout": "15s",
}
"""Server settings of every store session: no statement, lock wait or open transaction whose
client went silent lasts longer than these (the server ends it and the store reconnects)."""
_inherited: list[Any] = []
"""Connections a forked child inherited: kept referenced, never used or closed."""


class PostgresDialect:
    """PostgreSQL's spelling: ``%s`` placeholders, serialised change-feed writers."""

    name = "postgresql"
    serial_primary_key = "BIGSERIAL PRIMARY KEY"
    blob = "BYTEA"

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            conn.execute("LOCK TABLE kzg_changes IN EXCLUSIVE MODE")
            yield

    @contextmanager
    def schema_transaction(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            yield

    def lost(self, conn: Any, exc: Exception) -> bool:
        return bool(conn.closed or conn.broken)

    def abandon(self, conn: Any) -> None:
        # The child's copy of the socket now reads and writes /dev/null: whatever the
        # connection object does later (closing it sends a message) cannot reach the server.
        _inherited.append(conn)
        try:
            descriptor = conn.fileno()
        except Exception:  # already closed: nothing shared is left
            return
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, descriptor)
        finally:
            os.close(null)

    def after_erasure(self, conn: Any) -> None:
        """Nothing here: deleted rows stay in dead tuples until the table is vacuumed (see
        docs/privacy.md)."""

    def ensure_column(self, conn: Any, table: str, column: str, sql_type: str) -> None:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")


def open_postgres(url: str) -> SqlStore:
    """Connect to PostgreSQL at ``url`` (a libpq URI) and prepare the schema."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            "the PostgreSQL store needs psycopg: pip install 'kzai-guard[postgres]'"
        ) from exc
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"the PostgreSQL store URL is not valid: {exc}") from exc
    bounds = " ".join(f"-c {name}={value}" for name, value in SESSION_BOUNDS.items())
    options = f"{bounds} {given['options']}" if given.get("options") else bounds
    conninfo = make_conninfo(
        "",
        **{
            **_CONNECTION_DEFAULTS,
            **{k: v for k, v in given.items() if v is not None},
            "options": options,
        },
    )

    def connect() -> Any:
        return psycopg.connect(conninfo, autocommit=True)

    return SqlStore(connect, PostgresDialect(), watchdog=CallWatchdog(_shut_down))


def _shut_down(conn: Any) -> None:
    """Shut the connection's socket down, so that a wait on it ends with an error."""
    duplicate = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    finally:
        duplicate.close()
