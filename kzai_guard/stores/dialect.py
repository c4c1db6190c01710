"""The few places where SQLite and PostgreSQL differ, for the SQL store."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["Connection", "Dialect"]


class Connection(Protocol):
    """The DB-API subset the SQL store uses."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...

    def close(self) -> None: ...


class Dialect(Protocol):
    """How one database spells what the SQL store needs."""

    name: str
    serial_primary_key: str
    blob: str

    def sql(self, statement: str) -> str:
        """``statement`` written with ``?`` placeholders, in this database's paramstyle."""
        ...

    def transaction(self, conn: Any) -> AbstractContextManager[None]:
        """A write transaction that serialises writers of the change feed."""
        ...

    def schema_transaction(self, conn: Any) -> AbstractContextManager[None]:
        """A transaction that creates or migrates the schema, one process at a time, so that
        any number of processes may open the store at once, even on an empty database."""
        ...

    def lost(self, conn: Any, exc: Exception) -> bool:
        """True when ``exc`` left ``conn`` unusable, so that a new connection is needed."""
        ...

    def abandon(self, conn: Any) -> None:
        """Let go of a connection inherited across a fork without touching the session the
        parent still uses on it (no close, no message to the server)."""
        ...

    def after_erasure(self, conn: Any) -> None:
        """Make rows just deleted unreadable in the database's files (outside a transaction);
        raise :class:`~kzai_guard.errors.ErasureIncomplete` when that cannot be
        shown."""
        ...

    def ensure_column(self, conn: Any, table: str, column: str, sql_type: str) -> None:
        """Add ``column`` to ``table`` unless it is there (a schema written by an earlier build).

        Runs inside :meth:`transaction`.
        """
        ...
