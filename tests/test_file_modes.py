"""Files holding keys, raw identifiers or sealed data are 0600 (directories made 0700), even under
umask 022: the store and its ``-wal``/``-shm``, the subject-key store and its side files, signing
keys, exports."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import kzai_guard as kg
from kzai_guard.audit.keys import write_keypair
from kzai_guard.audit.subject_keys import SqliteSubjectKeys
from kzai_guard.cli.main import main as cli
from kzai_guard.private_files import private_directory, private_file, private_sqlite
from kzai_guard.stores.sqlite import open_sqlite
from tests.samples import GATEWAY_SUBJECT, LOAN


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sqlite_files(database: Path) -> list[Path]:
    return [Path(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")]


def test_the_store_and_its_wal_and_shm_are_0600_in_a_directory_made_0700(tmp_path: Path) -> None:
    database = tmp_path / "made" / "for" / "kzai-guard.db"
    store = open_sqlite(database)
    try:
        store.secret("pseudonym-key", lambda: os.urandom(32))
        files = sqlite_files(database)
        assert all(path.exists() for path in files)
        assert [mode(path) for path in files] == [0o600] * 3
    finally:
        store.close()
    assert mode(tmp_path / "made") == mode(tmp_path / "made" / "for") == 0o700


def test_the_subject_key_store_and_its_side_files_are_0600(tmp_path: Path) -> None:
    database = tmp_path / "subject-keys.sqlite3"
    keys = SqliteSubjectKeys(database)
    try:
        keys.key_for("ref-1")
        keys.commit()
        files = sqlite_files(database)
        assert all(path.exists() for path in files)
        assert [mode(path) for path in files] == [0o600] * 3
    finally:
        keys.close()


def test_side_files_an_earlier_run_left_readable_are_narrowed(tmp_path: Path) -> None:
    database = tmp_path / "kzai-guard.db"
    for path in sqlite_files(database):
        path.touch(mode=0o644)
        os.chmod(path, 0o644)
    private_sqlite(database)
    assert [mode(path) for path in sqlite_files(database)] == [0o600] * 3


def test_an_existing_directory_is_left_as_it_is(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    private_directory(tmp_path)
    private_file(tmp_path / "secret")
    assert (mode(tmp_path), mode(tmp_path / "secret")) == (0o755, 0o600)


def test_a_signing_key_is_0600_in_a_directory_made_0700(tmp_path: Path) -> None:
    private, public, _ = write_keypair(tmp_path / "keys", "test-key")
    assert (mode(tmp_path / "keys"), mode(private), mode(public)) == (0o700, 0o600, 0o644)


def test_a_guards_store_and_subject_keys_are_private_after_decisions(tmp_path: Path) -> None:
    guard = kg.Guard(
        [LOAN],
        store=f"sqlite:///{tmp_path / 'state' / 'kzai-guard.db'}",
        audit=tmp_path / "audit",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    try:
        guard.consents.grant("KZ-880101300123", "credit-scoring", "v1")
        guard.sink.flush()  # type: ignore[attr-defined]
        written = [
            *sqlite_files(tmp_path / "state" / "kzai-guard.db"),
            *(tmp_path / "audit").glob("*.sqlite3*"),
            *(tmp_path / "audit" / "keys").glob("*.key"),
        ]
        assert len(written) >= 7
        modes = {path.name: mode(path) for path in written}
        assert modes == {path.name: 0o600 for path in written}
        assert mode(tmp_path / "state") == mode(tmp_path / "audit" / "keys") == 0o700
    finally:
        guard.close()


def test_an_export_file_is_0600(tmp_path: Path) -> None:
    guard = kg.Guard(
        [LOAN],
        store="memory://",
        audit=tmp_path / "audit",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        pseudonym_key=b"k" * 32,
    )
    guard.consents.grant("KZ-1", "credit-scoring", "v1")
    guard.close()
    public = sorted((tmp_path / "audit" / "keys").glob("*.pub"))[-1]
    out = tmp_path / "export.jsonl"
    code = cli(
        [
            "export",
            str(tmp_path / "audit"),
            "--format",
            "jsonl",
            "--public-key",
            str(public),
            "--origin",
            (tmp_path / "audit" / "origin").read_text().strip(),  # the log this test made
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert out.stat().st_size > 0
    assert mode(out) == 0o600
