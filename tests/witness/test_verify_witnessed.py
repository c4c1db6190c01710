"""verify with a witness policy, held checkpoints and an expected origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Signer, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import checkpoints
from kzai_guard.audit.segments import list_segments
from kzai_guard.audit.witnesses import COSIGNED_FILE
from kzai_guard.cli.main import main
from kzai_guard.cli.trust import ORIGIN_NEEDED
from tests.audit.conftest import make_record

ORIGIN = "audit.example.kz/credit"


def _write(directory: Path, signer: Signer, n: int, changed: int | None = None) -> None:
    log = AuditLog.open(
        directory,
        signer=signer,
        origin=ORIGIN,
        checkpoint_every=7,
        checkpoint_interval_ms=3_600_000,
    )
    for i in range(n):
        log.write(make_record(i, verdict="allow") if i == changed else make_record(i))
    log.close()


def _cosign(directory: Path, witness: Cosigner, size: int | None = None) -> SignedCheckpoint:
    notes = checkpoints(directory)
    note = notes[-1] if size is None else next(n for n in notes if n.checkpoint.size == size)
    cosigned = note.with_signatures([witness.cosign(note.checkpoint, 1_760_000_000)])
    with (directory / COSIGNED_FILE).open("a") as out:
        out.write(cosigned.note() + "\n")
    return cosigned


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Signer, Cosigner, Path]:
    _, public, signer = write_keypair(tmp_path / "keys", "log-key")
    witness = Cosigner.generate("w1.example")
    wkey = tmp_path / "w1.pub"
    wkey.write_text(witness.public_key.vkey() + "\n")
    directory = tmp_path / "audit"
    _write(directory, signer, 30)
    return directory, public, signer, witness, wkey


def _verify(directory: Path, public: Path, *extra: str) -> int:
    return main(["verify", str(directory), "--public-key", str(public), "--origin", ORIGIN, *extra])


def test_newest_checkpoint_cosigned_by_the_quorum_passes(
    setup: tuple[Path, Path, Signer, Cosigner, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _, witness, wkey = setup
    _cosign(directory, witness)
    assert _verify(directory, public, "--witness-key", str(wkey), "--witnesses", "1") == 0
    assert "size 30 cosigned by w1.example" in capsys.readouterr().out


def test_uncosigned_newest_checkpoint_fails_the_policy(
    setup: tuple[Path, Path, Signer, Cosigner, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _, witness, wkey = setup
    _cosign(directory, witness, size=28)
    other = Cosigner.generate("w2.example")
    _cosign(directory, other)  # a witness the auditor does not trust
    assert _verify(directory, public, "--witness-key", str(wkey)) == 1
    assert "unwitnessed: the checkpoint for size 30 carries 0 valid cosignatures of the 1" in (
        capsys.readouterr().out
    )
    assert _verify(directory, public, "--witness-key", str(wkey), "--witnessed-size", "28") == 0


def test_rolled_back_log_passes_alone_but_fails_against_a_held_cosigned_checkpoint(
    setup: tuple[Path, Path, Signer, Cosigner, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, public, _, witness, wkey = setup
    held = tmp_path / "held.checkpoint"
    held.write_text(_cosign(directory, witness).note())
    # the insider drops records 21.. and every checkpoint and cosignature above 21
    seg = list_segments(directory)[0]
    lines = seg.path.read_bytes().split(b"\n")[:21]
    seg.path.write_bytes(b"\n".join(lines) + b"\n")
    kept = [n for n in read_notes(seg.checkpoints) if isinstance(n, SignedCheckpoint)]
    seg.checkpoints.write_text("".join(n.note() + "\n" for n in kept if n.checkpoint.size <= 21))
    (directory / COSIGNED_FILE).unlink()
    _cosign(directory, witness, size=21)
    assert _verify(directory, public, "--witness-key", str(wkey)) == 0
    capsys.readouterr()
    assert _verify(directory, public, "--checkpoint", str(held)) == 1
    assert capsys.readouterr().out.startswith("FAILED at seq 21: rolled-back: the log ends at")


def test_log_rewritten_and_resigned_by_the_key_holder_fails_as_forked(
    setup: tuple[Path, Path, Signer, Cosigner, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, public, signer, witness, _ = setup
    held = tmp_path / "held.checkpoint"
    held.write_text(_cosign(directory, witness, size=28).note())
    rewritten = tmp_path / "rewritten"
    _write(rewritten, signer, 35, changed=3)
    assert _verify(rewritten, public) == 0
    capsys.readouterr()
    assert _verify(rewritten, public, "--checkpoint", str(held)) == 1
    assert "forked" in capsys.readouterr().out
    assert _verify(directory, public, "--checkpoint", str(held)) == 0


def test_expected_origin_from_option_or_bound_key_never_the_directory(
    setup: tuple[Path, Path, Signer, Cosigner, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, public, signer, _, _ = setup
    other = "other-host.example.kz/credit"
    args = ["verify", str(directory), "--public-key", str(public)]
    assert main([*args, "--origin", other]) == 1
    assert "wrong-origin" in capsys.readouterr().out
    bound = tmp_path / "bound.pub"
    bound.write_text(f"{other} {signer.public_key.vkey()}\n")
    assert main(["verify", str(directory), "--public-key", str(bound)]) == 1
    bound.write_text(f"{ORIGIN} {signer.public_key.vkey()}\n")
    assert main(["verify", str(directory), "--public-key", str(bound)]) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err == f"kzai-guard verify: {ORIGIN_NEEDED}\n"


def test_another_hosts_log_signed_with_the_same_key_is_refused(
    setup: tuple[Path, Path, Signer, Cosigner, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, public, signer, _, _ = setup
    elsewhere = tmp_path / "other-host"
    log = AuditLog.open(
        elsewhere, signer=signer, origin="other-host.example.kz/credit", checkpoint_every=7
    )
    for i in range(30):
        log.write(make_record(i))
    log.close()
    capsys.readouterr()
    assert _verify(elsewhere, public) == 1
    assert capsys.readouterr().out == (
        f"FAILED at seq 0: wrong-origin: the log in {elsewhere} is "
        f"'other-host.example.kz/credit', not the expected {ORIGIN!r}\n"
    )
    # the directory's claim changed to this host's: its signed checkpoints still name the other
    (elsewhere / "origin").write_text(ORIGIN + "\n")
    assert _verify(elsewhere, public) == 1
    assert capsys.readouterr().out == (
        "FAILED at seq 6: forged-checkpoint: the checkpoint for size 7 names origin "
        f"'other-host.example.kz/credit', the log is {ORIGIN!r}\n"
    )
