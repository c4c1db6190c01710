"""An erased subject key is gone from every file of the key store, also while a reader holds the
WAL: the checkpoint's result is checked and the checkpoint tried again."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import kzai_guard as kg
from kzai_guard import sqlite_erasure
from kzai_guard.audit.subject_keys import SqliteSubjectKeys
from kzai_guard.sqlite_erasure import find_in_files, sqlite_files, truncate_wal


def reader_holding_a_snapshot(database: Path) -> sqlite3.Connection:
    """A connection inside a read transaction begun now: the WAL cannot be reset past it."""
    reader = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM subject_key").fetchone()
    return reader


def test_an_erased_key_is_in_no_file_after_a_reader_let_go(tmp_path: Path) -> None:
    database = tmp_path / "subject-keys.sqlite3"
    keys = SqliteSubjectKeys(database, reserve_keys=False)
    try:
        key = keys.key_for("sk:erased")
        other = keys.key_for("sk:kept")
        assert key is not None and other is not None
        keys.commit()
        reader = reader_holding_a_snapshot(database)
        released = threading.Timer(0.2, reader.rollback)
        released.start()
        try:
            keys.erase("sk:erased")
        finally:
            released.join()
            reader.close()
        assert find_in_files(sqlite_files(database), [key]) == []
        assert find_in_files(sqlite_files(database), [other]) != []
        assert keys.key_for("sk:erased", create=False) is None
    finally:
        keys.close()


def test_an_erasure_a_reader_keeps_from_finishing_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_erasure, "TRUNCATE_ATTEMPTS_SECONDS", 0.1)
    database = tmp_path / "subject-keys.sqlite3"
    keys = SqliteSubjectKeys(database, reserve_keys=False)
    try:
        keys.key_for("sk:erased")
        keys.commit()
        reader = reader_holding_a_snapshot(database)
        try:
            with pytest.raises(kg.ErasureIncomplete, match="WAL could not be truncated"):
                keys.erase("sk:erased")
        finally:
            reader.close()
        # run again once the reader is gone, it finishes
        keys.erase("sk:erased")
        assert keys.key_for("sk:erased", create=False) is None
    finally:
        keys.close()


def test_truncate_wal_accepts_a_database_without_a_wal() -> None:
    conn = sqlite3.connect(":memory:")
    truncate_wal(conn, "an in-memory database")
    conn.close()
