"""The few places where SQLite and PostgreSQL differ, for the SQL store."""

from __future__ import annotations

from collections.abc import Sequence
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

    def executemany(self, conn: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``statement`` (already in this paramstyle) once per row."""
        ...

    def transaction(self, conn: Any) -> AbstractContextManager[None]:
        """A write transaction that serialises writers of the change feed."""
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
