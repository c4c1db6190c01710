"""Log formats: a format-1 log made before format 2 still verifies and grows as format 1, the
format marker cannot be changed to any advantage, and crash repair holds in both formats."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from kzai_guard.audit.keys import Keyring, Signer, load_public_key, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import inclusion_bundle, verify_bundle
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.receipt import make_receipt, verify_receipt
from kzai_guard.audit.segments import list_segments, parse_line
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditLogError

from .conftest import FORMATS, WriteLog, leaf_of, make_record
from .test_crash import _check, _run_round

DATA = Path(__file__).parent / "data" / "format1"
"""A log of 10 records (checkpoints at 4, 8 and 10) written by the code before format 2."""
OLD_ORIGIN = "test.example/format-1"


def _lines(directory: Path) -> list[bytes]:
    return [
        line for s in list_segments(directory) for line in s.path.read_bytes().split(b"\n")[:-1]
    ]


@pytest.fixture
def old_log(tmp_path: Path) -> tuple[Path, Signer, Keyring]:
    directory = tmp_path / "audit"
    shutil.copytree(DATA / "audit", directory)
    signer = Signer.from_file(DATA / "keys" / "format1-test-key.key")
    ring = Keyring([load_public_key(DATA / "keys" / "format1-test-key.pub")])
    return directory, signer, ring


def test_a_format_1_log_made_before_format_2_verifies(
    old_log: tuple[Path, Signer, Keyring],
) -> None:
    directory, _, ring = old_log
    report = verify_log(directory, ring, origin=OLD_ORIGIN)
    assert (report.ok, report.records, report.checkpoints) == (True, 10, 3)
    assert not (directory / "format").exists()


def test_a_format_1_log_made_before_format_2_keeps_growing_in_format_1(
    old_log: tuple[Path, Signer, Keyring],
) -> None:
    directory, signer, ring = old_log
    log = AuditLog.open(directory, signer=signer, checkpoint_every=4, retention_days=None)
    for i in range(10, 15):
        log.write(make_record(i))
    log.close()
    assert not (directory / "format").exists()
    lines = _lines(directory)
    assert [parse_line(line)["prev"] for line in lines[1:]] == [
        leaf_of(1, line).hex() for line in lines[:-1]
    ]
    report = verify_log(directory, ring, origin=OLD_ORIGIN)
    assert (report.ok, report.records) == (True, 15)
    bundle = inclusion_bundle(directory, seq=12)
    assert "log_format" not in bundle
    assert verify_bundle(bundle, ring, origin=OLD_ORIGIN).ok
    receipt = make_receipt(directory, decision_id="dec-000003").text()
    assert verify_receipt(receipt, ring, OLD_ORIGIN, log_format=1).ok
    assert not verify_receipt(receipt, ring, OLD_ORIGIN, log_format=2).ok


# ---------------------------------------------------------------------------- the marker


def _flip(directory: Path, marker: bytes | None) -> None:
    path = directory / "format"
    if marker is None:
        path.unlink()
    else:
        path.write_bytes(marker)


@pytest.mark.parametrize("records", [2, 12])
@pytest.mark.parametrize(
    ("made", "marker"),
    [(2, b"1\n"), (2, None), (1, b"2\n")],
    ids=["format-2-marked-1", "format-2-marker-deleted", "format-1-marked-2"],
)
def test_a_changed_format_marker_fails_verify_and_open_and_destroys_nothing(
    write_log: WriteLog,
    signer: Signer,
    keyring: Keyring,
    made: int,
    marker: bytes | None,
    records: int,
) -> None:
    # with 2 records the second line is the last: it must not be cut as a torn tail
    directory = write_log(records, log_format=made, checkpoint_every=5)
    original = (directory / "format").read_bytes()
    before = _lines(directory)
    _flip(directory, marker)
    report = verify_log(directory, keyring)
    # the chain of the other format breaks at the second line: its prev is the first's leaf
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (1, "altered")
    with pytest.raises(AuditLogError, match=f"the lines chain in log format {made}, but the log"):
        AuditLog.open(directory, signer=signer).close()
    assert _lines(directory) == before
    assert not verify_log(directory, keyring).ok
    (directory / "format").write_bytes(original)
    report = verify_log(directory, keyring)
    assert (report.ok, report.records) == (True, records)
    AuditLog.open(directory, signer=signer).close()


@pytest.mark.parametrize("made", FORMATS)
def test_a_marker_changed_on_a_log_of_one_record_mismatches_its_signed_root(
    write_log: WriteLog, signer: Signer, keyring: Keyring, made: int
) -> None:
    # no second line to break the chain: the signed checkpoint still exposes the change
    directory = write_log(1, log_format=made)
    (directory / "format").write_bytes(b"%d\n" % (3 - made))
    report = verify_log(directory, keyring)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (0, "altered")
    with pytest.raises(AuditLogError):
        AuditLog.open(directory, signer=signer).close()


def test_an_unknown_format_is_refused_by_verify_and_open(
    write_log: WriteLog, signer: Signer, keyring: Keyring
) -> None:
    directory = write_log(3)
    (directory / "format").write_bytes(b"3\n")
    report = verify_log(directory, keyring)
    assert report.problem is not None
    assert report.problem.kind == "unknown-format"
    assert report.problem.message == (
        f"{directory / 'format'}: unknown log format 3: this version reads formats 1 and 2"
    )
    with pytest.raises(AuditLogError, match="unknown log format 3"):
        AuditLog.open(directory, signer=signer).close()


def test_a_proof_bundle_that_claims_the_other_format_fails(
    write_log: WriteLog, keyring: Keyring
) -> None:
    directory = write_log(9)
    bundle = inclusion_bundle(directory, seq=4)
    assert bundle["log_format"] == 2
    assert verify_bundle(bundle, keyring).ok
    claimed = dict(bundle, log_format=1)
    check = verify_bundle(json.loads(json.dumps(claimed)), keyring)
    assert (check.ok, check.message) == (False, "leaf_hash is not the hash of entry")


# ---------------------------------------------------------------------------- crashes


@pytest.mark.parametrize("log_format", FORMATS)
def test_sigkilled_writers_lose_no_acknowledged_record_in_either_format(
    tmp_path: Path, log_format: int
) -> None:
    rng = random.Random(20261206 + log_format)
    key, _, signer = write_keypair(tmp_path / "keys", "crash-key")
    directory = tmp_path / "audit"
    AuditLog.open(directory, signer=signer, log_format=log_format).close()
    acked: list[str] = []
    for round_no in range(6):
        acked.extend(_run_round(directory, key, round_no, rng))
    _check(directory, signer, acked)
    assert (directory / "format").read_bytes() == b"%d\n" % log_format
    lines = _lines(directory)
    assert parse_line(lines[-1])["prev"] == leaf_of(log_format, lines[-2]).hex()
    assert [e.seq for e in read_verified(directory)] == list(range(len(lines)))
