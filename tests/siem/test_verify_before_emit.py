"""Only records under a verified signed checkpoint leave through ``export`` and ``ship``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.reader import read_verified
from kzai_guard.cli.main import main
from kzai_guard.cli.trust import ORIGIN_NEEDED
from kzai_guard.errors import AuditLogError, ConfigurationError
from kzai_guard.siem import CursorFile, Shipper, make_encoder, open_destination
from tests.audit.tampering import delete_derived, edit_record, rechain

from .conftest import SETTINGS, sample_record

ORIGIN = "emit.example.kz/audit"


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("emit-test")


def _log(directory: Path, signer: Signer, n: int = 20) -> Path:
    log = AuditLog.open(
        directory,
        signer=signer,
        checkpoint_every=5,
        durability="sync",
        seal_personal_fields=False,
        retention_days=None,
        origin=ORIGIN,
    )
    for i in range(n):
        log.write(sample_record(i))
    log.close()
    return directory


def _seqs(path: Path) -> list[int]:
    return [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()]


def _with_origin(keys: tuple[str, ...]) -> list[str]:
    """The options as given, with the log's expected origin where a key is given."""
    return [*keys, "--origin", ORIGIN] if "--public-key" in keys else list(keys)


def _export(directory: Path, out: Path, *keys: str) -> int:
    args = ["export", str(directory), "--format", "jsonl", "--out", str(out)]
    return main([*args, *_with_origin(keys)])


def _ship(directory: Path, out: Path, cursor: Path, *keys: str) -> int:
    args = ["ship", str(directory), "--to", f"file:{out}", "--format", "jsonl", "--once"]
    return main([*args, "--cursor", str(cursor), "--quiet", *_with_origin(keys)])


def test_one_altered_line_in_the_middle_is_not_exported(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _log(tmp_path / "audit", signer)
    edit_record(directory, 13, verdict="allow")
    out = tmp_path / "out.jsonl"
    assert _export(directory, out, "--public-key", signer.public_key.vkey()) == 2
    # checkpoints at 5, 10, 15, 20: nothing from 10 (the first unconfirmed record) on leaves
    assert _seqs(out) == list(range(10))
    err = capsys.readouterr().err
    assert "ALARM" in err and "unconfirmed from seq 10" in err
    # after an attempted restart (refused: the damage is not a crash's) nothing changes
    with pytest.raises(AuditLogError):
        AuditLog.open(directory, signer=signer, checkpoint_every=5, retention_days=None)
    assert _export(directory, out, "--public-key", signer.public_key.vkey()) == 2
    assert _seqs(out) == list(range(10))


def test_an_altered_and_rechained_log_is_not_exported_past_the_last_good_checkpoint(
    tmp_path: Path, signer: Signer
) -> None:
    directory = _log(tmp_path / "audit", signer)
    edit_record(directory, 13, verdict="allow")
    rechain(directory, 13)
    out = tmp_path / "out.jsonl"
    assert _export(directory, out, "--public-key", signer.public_key.vkey()) == 2
    assert _seqs(out) == list(range(10))


def test_one_altered_line_is_not_shipped_and_the_cursor_stops_before_it(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _log(tmp_path / "audit", signer)
    edit_record(directory, 13, verdict="allow")
    out, cursor = tmp_path / "out.jsonl", tmp_path / "cursor"
    key = signer.public_key.vkey()
    assert _ship(directory, out, cursor, "--public-key", key) == 2
    assert _seqs(out) == list(range(10))
    saved = CursorFile(cursor).load()
    assert saved is not None and saved.seq == 9
    assert "ALARM" in capsys.readouterr().err
    # run again: still nothing past the break, the cursor does not move
    assert _ship(directory, out, cursor, "--public-key", key) == 2
    assert _seqs(out) == list(range(10))
    saved = CursorFile(cursor).load()
    assert saved is not None and saved.seq == 9


def test_a_log_without_checkpoints_exports_and_ships_nothing(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _log(tmp_path / "audit", signer)
    delete_derived(directory)
    out = tmp_path / "out.jsonl"
    key = signer.public_key.vkey()
    assert _export(directory, out, "--public-key", key) == 0
    assert out.read_bytes() == b""
    assert "records 0..19 are not covered by a signed checkpoint" in capsys.readouterr().err
    shipped, cursor = tmp_path / "shipped.jsonl", tmp_path / "cursor"
    assert _ship(directory, shipped, cursor, "--public-key", key) == 0
    assert not shipped.exists() or shipped.read_bytes() == b""
    assert CursorFile(cursor).load() is None


def test_a_checkpoint_signed_by_another_key_confirms_nothing(
    tmp_path: Path, signer: Signer
) -> None:
    directory = _log(tmp_path / "audit", signer)
    out = tmp_path / "out.jsonl"
    other = Signer.generate("emit-test").public_key.vkey()
    assert _export(directory, out, "--public-key", other) == 2
    assert out.read_bytes() == b""


def test_records_after_the_newest_checkpoint_wait_for_it(tmp_path: Path, signer: Signer) -> None:
    directory = tmp_path / "audit"
    log = AuditLog.open(
        directory,
        signer=signer,
        checkpoint_every=5,
        checkpoint_interval_ms=3_600_000,
        durability="sync",
        retention_days=None,
    )
    try:
        for i in range(7):
            log.write(sample_record(i))
        log.flush()
        held: list[tuple[int, int]] = []
        entries = read_verified(
            directory,
            public_keys=[signer.public_key],
            on_unsigned_tail=lambda a, b: held.append((a, b)),
        )
        assert [e.seq for e in entries] == list(range(5))
        assert held == [(5, 6)]
        log.checkpoint()
        assert [e.seq for e in read_verified(directory, public_keys=[signer.public_key])] == list(
            range(7)
        )
    finally:
        log.close()


def test_without_a_key_export_and_ship_refuse(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _log(tmp_path / "audit", signer)
    out = tmp_path / "out.jsonl"
    assert _export(directory, out) == 1
    assert not out.exists()
    assert _ship(directory, out, tmp_path / "cursor") == 1
    assert "--unverified" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="unverified=True"):
        Shipper(
            directory,
            open_destination(f"file:{out}", make_encoder("jsonl")),
            cursor=tmp_path / "cursor",
        )


def test_with_a_key_export_and_ship_refuse_without_an_expected_origin(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _log(tmp_path / "audit", signer)
    out, cursor = tmp_path / "out.jsonl", tmp_path / "cursor"
    key = ["--public-key", signer.public_key.vkey()]
    assert main(["export", str(directory), "--format", "jsonl", "--out", str(out), *key]) == 1
    assert capsys.readouterr().err == f"kzai-guard export: {ORIGIN_NEEDED}\n"
    ship = ["ship", str(directory), "--to", f"file:{out}", "--format", "jsonl", "--once"]
    assert main([*ship, "--cursor", str(cursor), *key]) == 1
    assert capsys.readouterr().err == f"kzai-guard ship: {ORIGIN_NEEDED}\n"
    assert not out.exists() and not cursor.exists()


def test_another_hosts_log_signed_with_the_same_key_is_neither_exported_nor_shipped(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "other-host"
    log = AuditLog.open(
        directory, signer=signer, origin="other-host.example.kz/audit", durability="sync"
    )
    for i in range(10):
        log.write(sample_record(i))
    log.close()
    out, cursor = tmp_path / "out.jsonl", tmp_path / "cursor"
    key = signer.public_key.vkey()
    assert _export(directory, out, "--public-key", key) == 2
    assert capsys.readouterr().err == (
        "kzai-guard export: ALARM: audit log broken at seq 0: the log in "
        f"{directory} is 'other-host.example.kz/audit', not the expected {ORIGIN!r}; "
        "0 records before it were written\n"
    )
    assert out.read_bytes() == b""
    assert _ship(directory, out, cursor, "--public-key", key) == 2
    assert "not the expected 'emit.example.kz/audit'" in capsys.readouterr().err
    assert out.read_bytes() == b"" and not cursor.exists()


def test_unverified_export_marks_every_event(tmp_path: Path, signer: Signer) -> None:
    directory = _log(tmp_path / "audit", signer, 3)
    out = tmp_path / "out.jsonl"
    assert _export(directory, out, "--unverified") == 0
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [e["unverified"] for e in events] == [True, True, True]
    verified = tmp_path / "verified.jsonl"
    assert _export(directory, verified, "--public-key", signer.public_key.vkey()) == 0
    lines = verified.read_bytes().splitlines()
    assert len(lines) == 3 and all("unverified" not in orjson.loads(line) for line in lines)


@pytest.mark.parametrize(
    ("fmt", "marker"),
    [
        ("cef", b" kzaiUnverified=true "),
        ("leef", b"\tkzaiUnverified=true\t"),
        ("syslog", b' unverified="true"'),
        ("ocsf", b'"unverified":true'),
        ("ecs", b'"unverified":true'),
        ("hec", b'"unverified":"true"'),
        ("jsonl", b'"unverified":true'),
    ],
)
def test_every_format_says_unverified(fmt: str, marker: bytes) -> None:
    from kzai_guard.siem._event import SiemEvent

    encoder = make_encoder(fmt, SETTINGS)
    unverified = encoder.encode(SiemEvent(sample_record(1), 1, "ab" * 32, verified=False))
    verified = encoder.encode(SiemEvent(sample_record(1), 1, "ab" * 32))
    assert marker in unverified
    assert b"nverified" not in verified
