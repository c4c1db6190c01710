"""The SQLite subject-key store: batch look-ups, and erasure that leaves no copy in the WAL."""

from __future__ import annotations

from pathlib import Path

from kzai_guard.audit.shredding import SqliteSubjectKeys


def test_prefetch_finds_stored_keys_and_lets_new_ones_be_made(tmp_path: Path) -> None:
    keys = SqliteSubjectKeys(tmp_path / "keys.sqlite3")
    stored = keys.key_for("sk:a")
    keys.commit()
    keys.close()
    reopened = SqliteSubjectKeys(tmp_path / "keys.sqlite3")
    reopened.prefetch(["sk:a", "sk:b"])
    assert reopened.key_for("sk:a") == stored
    assert reopened.key_for("sk:b", create=False) is None
    made = reopened.key_for("sk:b")
    assert made is not None and len(made) == 32 and made != stored
    reopened.commit()
    assert reopened.key_for("sk:b") == made
    reopened.close()


def test_an_erased_key_is_gone_after_prefetch_and_from_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path)
    key = keys.key_for("sk:a")
    assert key is not None and len(key) == 32
    keys.commit()
    keys.erase("sk:a")
    keys.prefetch(["sk:a"])
    assert keys.key_for("sk:a", create=False) is None
    wal = Path(str(path) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert key not in path.read_bytes()
    keys.close()
