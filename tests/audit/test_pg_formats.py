"""Log formats in PostgreSQL: the head row's ``format`` column, 1 for tables made before it; a
changed column makes the log refuse to open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.pg_copy import copy_log
from kzai_guard.audit.segments import parse_line
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditLogError

from .conftest import FORMATS, leaf_of, make_record
from .pg import private_database

ORIGIN = "pg-formats.example.kz/audit"
KEY = Signer.generate("pg-formats")
RING = Keyring([KEY.public_key])


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from private_database()


def _write(url: str, first: int, count: int, **options: object) -> None:
    log = AuditLog.open(url, signer=KEY, origin=ORIGIN, checkpoint_every=4, **options)  # type: ignore[arg-type]
    for i in range(first, first + count):
        log.write(make_record(i))
    log.close()


def _entries(url: str) -> list[bytes]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT line FROM kzg_log_entries ORDER BY seq").fetchall()
    return [bytes(line) for (line,) in rows]


def _format(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT format FROM kzg_log_head").fetchone()[0])


@pytest.mark.parametrize("log_format", FORMATS)
def test_a_postgres_log_chains_verifies_and_copies_in_its_format(
    pg_url: str, tmp_path: Path, log_format: int
) -> None:
    _write(pg_url, 0, 6, log_format=log_format)
    _write(pg_url, 6, 3, log_format=3 - log_format)  # fixed at creation
    assert _format(pg_url) == log_format
    lines = _entries(pg_url)
    assert [parse_line(line)["prev"] for line in lines[1:]] == [
        leaf_of(log_format, line).hex() for line in lines[:-1]
    ]
    copy_log(pg_url, tmp_path / "copy")
    assert (tmp_path / "copy" / "format").read_bytes() == b"%d\n" % log_format
    report = verify_log(tmp_path / "copy", RING, origin=ORIGIN)
    assert (report.ok, report.records) == (True, 9)


def test_a_new_postgres_log_is_format_2(pg_url: str) -> None:
    _write(pg_url, 0, 2)
    assert _format(pg_url) == 2


def test_tables_made_before_the_format_column_hold_a_format_1_log_that_keeps_growing(
    pg_url: str, tmp_path: Path
) -> None:
    _write(pg_url, 0, 5, log_format=1)
    with psycopg.connect(pg_url) as conn:
        conn.execute("ALTER TABLE kzg_log_head DROP COLUMN format")
    copy_log(pg_url, tmp_path / "before")
    assert verify_log(tmp_path / "before", RING, origin=ORIGIN).ok
    _write(pg_url, 5, 5)
    assert _format(pg_url) == 1
    copy_log(pg_url, tmp_path / "after")
    report = verify_log(tmp_path / "after", RING, origin=ORIGIN)
    assert (report.ok, report.records) == (True, 10)


@pytest.mark.parametrize("log_format", FORMATS)
def test_a_changed_format_column_makes_the_log_refuse_to_open(
    pg_url: str, tmp_path: Path, log_format: int
) -> None:
    _write(pg_url, 0, 6, log_format=log_format)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE kzg_log_head SET format = %s", (3 - log_format,))
    with pytest.raises(AuditLogError, match="holds what no writer of it can vouch for"):
        _write(pg_url, 6, 1)
    copy_log(pg_url, tmp_path / "copy")
    assert not verify_log(tmp_path / "copy", RING, origin=ORIGIN).ok
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE kzg_log_head SET format = %s", (log_format,))
    _write(pg_url, 6, 1)
    assert len(_entries(pg_url)) == 7
