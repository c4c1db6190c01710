"""A store written by an earlier build opens, gains the newer columns and keeps its records."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from kzai_guard.core.consent import CollectionMethod, Consent
from kzai_guard.stores.sqlite import open_sqlite

_FIRST_CONSENTS_TABLE = """
CREATE TABLE kzg_consents (
    id TEXT PRIMARY KEY, subject TEXT NOT NULL, purpose TEXT NOT NULL,
    notice_version TEXT NOT NULL, notice_digest TEXT, method TEXT NOT NULL,
    granted_at BIGINT NOT NULL, expires_at BIGINT, withdrawn_at BIGINT)
"""


def test_consents_written_before_withdrawal_restrictions_read_back_unrestricted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(_FIRST_CONSENTS_TABLE)
    conn.execute(
        "INSERT INTO kzg_consents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("c-1", "A-1", "credit-scoring", "2026-01", None, "api", 1772323200000000, None, None),
    )
    conn.commit()
    conn.close()

    store = open_sqlite(path)
    try:
        assert store.consents_of("A-1") == [
            Consent(
                id="c-1",
                subject="A-1",
                purpose="credit-scoring",
                notice_version="2026-01",
                notice_digest=None,
                method=CollectionMethod.API,
                granted_at=datetime(2026, 3, 1, tzinfo=UTC),
            )
        ]
        withdrawn = store.withdraw_consents(
            "A-1", "credit-scoring", datetime(2026, 4, 1, tzinfo=UTC)
        )
        assert [c.id for c in withdrawn] == ["c-1"]
    finally:
        store.close()
