"""The witness's durable state: per origin, the last checkpoint it cosigned (SQLite, 0600).

:meth:`WitnessStore.decide` reads an origin's state, lets a pure function decide, and stores
the new state in one ``BEGIN IMMEDIATE`` transaction, committed before the answer is returned.
Reading and writing atomically is what the spec requires: two requests checked against the same
old size must not both be cosigned, or the stored size could go back.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from kzai_guard.errors import ConfigurationError
from kzai_guard.witness.state import Answer, LogState

__all__ = ["WitnessStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL
)
"""


class WitnessStore:
    """The state file of one witness; safe to share between threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(f"cannot use witness state file {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def get(self, origin: str) -> LogState | None:
        """What was last cosigned for ``origin``, or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, root, note FROM cosigned WHERE origin = ?", (origin,)
            ).fetchone()
        return None if row is None else LogState(int(row[0]), bytes(row[1]), str(row[2]))

    def decide(self, origin: str, decide: Callable[[LogState | None], Answer]) -> Answer:
        """Run ``decide`` on the origin's state and store what it cosigned, atomically."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT size, root, note FROM cosigned WHERE origin = ?", (origin,)
                ).fetchone()
                current = None if row is None else LogState(int(row[0]), bytes(row[1]), row[2])
                answer = decide(current)
                new = answer.cosigned
                if new is not None:
                    if current is not None and new.size < current.size:
                        raise RuntimeError("refusing to store a smaller cosigned size")
                    db.execute(
                        "INSERT INTO cosigned (origin, size, root, note) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, "
                        "root = excluded.root, note = excluded.note",
                        (origin, new.size, new.root, new.note),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return answer

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
