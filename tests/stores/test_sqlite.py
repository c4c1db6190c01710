"""The SQLite file store is safe for several worker processes on one host."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kzai_guard.stores.url import open_store


def test_a_file_backed_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "kzai-guard.db"
    store = open_store(f"sqlite:///{path}")
    try:
        with sqlite3.connect(path) as other:
            [(mode,)] = other.execute("PRAGMA journal_mode").fetchall()
    finally:
        store.close()
    assert mode == "wal"
