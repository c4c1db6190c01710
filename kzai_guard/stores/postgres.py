"""PostgreSQL backend, for services that run on several hosts (extra ``postgres``: psycopg 3).

Writers of the change feed take an exclusive lock on it for the length of their transaction, so
that change numbers become visible in order and no poller skips one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kzai_guard.errors import ConfigurationError
from kzai_guard.stores.sql import SqlStore

__all__ = ["PostgresDialect", "open_postgres"]


class PostgresDialect:
    """PostgreSQL's spelling: ``%s`` placeholders, serialised change-feed writers."""

    name = "postgresql"
    serial_primary_key = "BIGSERIAL PRIMARY KEY"
    blob = "BYTEA"

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def executemany(self, conn: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(statement, rows)

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            if _has_changes_table(conn):
                conn.execute("LOCK TABLE kzg_changes IN EXCLUSIVE MODE")
            yield

    def after_erasure(self, conn: Any) -> None:
        """Nothing here: deleted rows stay in dead tuples until the table is vacuumed (see
        docs/privacy.md)."""

    def ensure_column(self, conn: Any, table: str, column: str, sql_type: str) -> None:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")


def _has_changes_table(conn: Any) -> bool:
    row = conn.execute("SELECT to_regclass('kzg_changes') IS NOT NULL").fetchone()
    return bool(row[0])


def open_postgres(url: str) -> SqlStore:
    """Connect to PostgreSQL at ``url`` (a libpq URI) and prepare the schema."""
    try:
        import psycopg
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            "the PostgreSQL store needs psycopg: pip install 'kzai-guard[postgres]'"
        ) from exc
    conn = psycopg.connect(url, autocommit=True)
    return SqlStore(conn, PostgresDialect())
