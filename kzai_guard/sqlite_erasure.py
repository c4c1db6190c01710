"""Erasing from a SQLite database for good: the WAL truncated and checked, the bytes looked for.

A row deleted from a database in WAL mode is gone from the database file only once the WAL is
checkpointed (with ``secure_delete`` on, its bytes are overwritten there), and its earlier
page images stay in the ``-wal`` file until the WAL is truncated. A checkpoint cannot finish
while another connection reads an older snapshot, and ``PRAGMA wal_checkpoint(TRUNCATE)``
says so in its result rather than failing. :func:`truncate_wal` therefore checks the result
and tries again while a reader holds the WAL; :func:`find_in_files` then reads the database
and its side files as bytes, so that an erasure can verify that what it erased is nowhere.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from kzai_guard.errors import ErasureIncomplete

__all__ = ["find_in_files", "sqlite_files", "truncate_wal"]

TRUNCATE_ATTEMPTS_SECONDS = 10.0
"""How long :func:`truncate_wal` keeps trying while readers hold the WAL."""
_RETRY_SECONDS = 0.02
_ATTEMPT_WAIT_MS = 50


def truncate_wal(conn: sqlite3.Connection, what: str, timeout: float | None = None) -> None:
    """Checkpoint ``conn``'s database and truncate its WAL to zero bytes, or raise.

    ``PRAGMA wal_checkpoint(TRUNCATE)`` answers ``(busy, wal frames, frames checkpointed)``;
    it has worked when ``busy`` is 0 and the WAL holds no frame. While another connection
    reads, it is tried again until ``timeout`` seconds (default
    :data:`TRUNCATE_ATTEMPTS_SECONDS`) have passed.
    """
    if timeout is None:
        timeout = TRUNCATE_ATTEMPTS_SECONDS
    # each attempt waits briefly for readers (the busy handler), this loop for the rest
    row = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {_ATTEMPT_WAIT_MS}")
    try:
        _truncate(conn, what, timeout)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(row[0]) if row else 0}")


def _truncate(conn: sqlite3.Connection, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        busy, frames = (row[0], row[1]) if row is not None else (1, -1)
        # frames is -1 for a database not in WAL mode: nothing lingers in a WAL then
        if busy == 0 and frames in (0, -1):
            return
        if time.monotonic() >= deadline:
            raise ErasureIncomplete(
                f"{what}: the WAL could not be truncated within {timeout:g} s (another "
                "connection kept reading); the erased data may remain in its -wal file until "
                "the erasure is run again"
            )
        time.sleep(_RETRY_SECONDS)


def sqlite_files(database: str | Path) -> list[Path]:
    """The database file and those of its ``-wal``, ``-shm`` and ``-journal`` that exist."""
    main = Path(database)
    side = (Path(f"{main}{suffix}") for suffix in ("-wal", "-shm", "-journal"))
    return [main, *(path for path in side if path.exists())]


def find_in_files(paths: Iterable[Path], needles: Iterable[bytes]) -> list[Path]:
    """The files among ``paths`` whose bytes contain any of ``needles`` (empty ones skipped)."""
    wanted = [needle for needle in needles if needle]
    found = []
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if any(needle in data for needle in wanted):
            found.append(path)
    return found
