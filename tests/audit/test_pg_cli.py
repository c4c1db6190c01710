"""The command line on a log in PostgreSQL: copy, and the verbs that take a postgresql:// URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzai_guard.audit.keys import write_keypair
from kzai_guard.audit.lines import LineEncoder
from kzai_guard.audit.pg_storage import PostgresLogStorage
from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys
from kzai_guard.audit.shredding import Sealer
from kzai_guard.cli.main import main

from .conftest import make_record
from .pg import append_batch, private_database

RECORDS = 60
ORIGIN = "pg-cli.example.kz/audit"


@pytest.fixture(scope="module")
def pg_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A log of 60 sealed records (3 checkpoints) in a private database, and its public key."""
    keydir = tmp_path_factory.mktemp("keys")
    _, public, signer = write_keypair(keydir, "pg-cli")
    for url in private_database():
        storage = PostgresLogStorage(url, origin=ORIGIN)
        keys = PostgresSubjectKeys(url)
        encoder = LineEncoder(Sealer(keys))
        for b in range(3):
            records = [make_record(b * 20 + i, subject=f"p:cli{i % 3}") for i in range(20)]
            append_batch(storage, encoder, records, signer)
        storage.close()
        keys.close()
        yield url, public


def test_copy_then_verify_the_directory(
    pg_log: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, public = pg_log
    assert main(["copy", url, str(tmp_path / "copy")]) == 0
    assert f"copied {RECORDS} records, 3 checkpoints" in capsys.readouterr().out
    assert (
        main(["verify", str(tmp_path / "copy"), "--public-key", str(public), "--origin", ORIGIN])
        == 0
    )
    assert f"OK: {RECORDS} records" in capsys.readouterr().out


def test_verify_by_url_reports_without_credentials(
    pg_log: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, public = pg_log
    with_user = url.replace("postgresql://", "postgresql://postgres:secret@")
    assert (
        main(["verify", with_user, "--public-key", str(public), "--json", "--origin", ORIGIN]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == RECORDS
    assert "secret" not in report["directory"]


def test_verify_by_url_needs_a_public_key(
    pg_log: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = pg_log
    assert main(["verify", url, "--origin", ORIGIN]) == 2
    assert "--public-key" in capsys.readouterr().err


def test_prove_by_url_and_check_the_bundle(
    pg_log: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, public = pg_log
    bundle = tmp_path / "proof.json"
    assert main(["prove", url, make_record(33).id, "--out", str(bundle), "--origin", ORIGIN]) == 0
    assert json.loads(bundle.read_text())["leaf_index"] == 33
    assert main(["verify-proof", str(bundle), "--public-key", str(public), "--origin", ORIGIN]) == 0
    assert capsys.readouterr().out.startswith("OK")


def test_consistency_by_url(pg_log: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, public = pg_log
    assert main(["consistency", url, "20", "--public-key", str(public), "--origin", ORIGIN]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["new_size"] == RECORDS
    assert captured.err.startswith("OK")


def test_export_by_url_unseals_with_the_databases_keys(
    pg_log: tuple[str, Path], tmp_path: Path
) -> None:
    url, public = pg_log
    out = tmp_path / "events.jsonl"
    args = ["export", url, "--format", "jsonl", "--out", str(out), "--public-key", str(public)]
    assert main([*args, "--origin", ORIGIN]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == RECORDS
    assert "p:cli1" in out.read_text()


def test_export_by_url_needs_a_key_or_marks_every_event_unverified(
    pg_log: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = pg_log
    out = tmp_path / "events.jsonl"
    args = ["export", url, "--format", "jsonl", "--out", str(out)]
    assert main(args) == 1
    assert "--unverified" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--unverified"]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == RECORDS
    assert all(event["unverified"] is True for event in events)


def test_ship_by_url_sends_once_and_needs_a_cursor(
    pg_log: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, public = pg_log
    out = tmp_path / "shipped.jsonl"
    ship = ["ship", url, "--to", f"file:{out}", "--format", "jsonl", "--quiet"]
    ship += ["--public-key", str(public), "--origin", ORIGIN]
    assert main(ship) == 1
    assert "--cursor" in capsys.readouterr().err
    cursor = tmp_path / "cursor"
    assert main([*ship, "--cursor", str(cursor)]) == 0
    assert len(out.read_text().splitlines()) == RECORDS
    assert main([*ship, "--cursor", str(cursor)]) == 0  # nothing new: nothing sent again
    assert len(out.read_text().splitlines()) == RECORDS
