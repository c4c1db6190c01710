"""Receipts (C2SP tlog-proof): written by prove --receipt, checked offline, also by code
written here from the specs alone."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Signer, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import checkpoints
from kzai_guard.audit.segments import list_segments
from kzai_guard.audit.witnesses import COSIGNED_FILE
from kzai_guard.cli.main import main
from tests.audit.conftest import make_record

ORIGIN = "audit.example.kz/credit"


def _independent_check(
    text: str, log_vkey: str, witness_vkey: str, origin: str, log_format: int
) -> str:
    """tlog-proof, signed-note, tlog-cosignature and RFC 6962 2.1.1 from scratch; returns the
    record's decision id or raises. The leaf is the application's part of tlog-proof: the
    record's line (format 1) or its SHA-256 (format 2) is the tree's entry."""
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1].startswith("extra ") and lines[2].startswith("index ")
    entry = base64.b64decode(lines[1][6:])
    index = int(lines[2][6:])
    path = [base64.b64decode(x) for x in lines[3:]]
    body, _, sigs = note.partition("\n\n")
    body_bytes = (body + "\n").encode()
    got_origin, size_text, root_b64 = body.split("\n")
    assert got_origin == origin
    size, root = int(size_text), base64.b64decode(root_b64)

    def vkey(text: str) -> tuple[str, bytes, bytes]:
        name, kid, key = text.split("+", 2)
        raw = base64.b64decode(key)
        return name, bytes.fromhex(kid), raw

    log_name, log_id, log_raw = vkey(log_vkey)
    assert log_raw[0] == 1
    w_name, w_id, w_raw = vkey(witness_vkey)
    assert w_raw[0] == 4
    assert hashlib.sha256(w_name.encode() + b"\n" + w_raw).digest()[:4] == w_id
    log_ok = witness_ok = False
    for line in sigs.rstrip("\n").split("\n"):
        _, name, sig_b64 = line.split(" ")
        sig = base64.b64decode(sig_b64)
        if name == log_name and sig[:4] == log_id:
            Ed25519PublicKey.from_public_bytes(log_raw[1:]).verify(sig[4:], body_bytes)
            log_ok = True
        if name == w_name and sig[:4] == w_id:
            (stamp,) = struct.unpack(">Q", sig[4:12])
            message = b"cosignature/v1\ntime %d\n" % stamp + body_bytes
            Ed25519PublicKey.from_public_bytes(w_raw[1:]).verify(sig[12:], message)
            witness_ok = True
    assert log_ok and witness_ok

    # RFC 6962 2.1.1: rebuild the root from the leaf and its path, top-down split
    def climb(idx: int, n: int, node: bytes, proof: list[bytes]) -> bytes:
        if n == 1:
            assert not proof
            return node
        k = 1 << ((n - 1).bit_length() - 1)
        if idx < k:
            left = climb(idx, k, node, proof[:-1])
            return hashlib.sha256(b"\x01" + left + proof[-1]).digest()
        right = climb(idx - k, n - k, node, proof[:-1])
        return hashlib.sha256(b"\x01" + proof[-1] + right).digest()

    tree_entry = entry if log_format == 1 else hashlib.sha256(entry).digest()
    leaf = hashlib.sha256(b"\x00" + tree_entry).digest()
    if climb(index, size, leaf, path) != root:
        raise InvalidSignature("the inclusion proof does not reach the root")
    record = __import__("json").loads(entry)
    assert record["seq"] == index
    return str(record["rec"]["id"])


@pytest.fixture(params=[1, 2], ids=lambda f: f"format{f}")
def log(
    tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[Path, Path, Signer, Cosigner, Path]:
    _, public, signer = write_keypair(tmp_path / "keys", "log-key")
    directory = tmp_path / "audit"
    audit = AuditLog.open(
        directory,
        signer=signer,
        origin=ORIGIN,
        checkpoint_every=7,
        checkpoint_interval_ms=3_600_000,
        log_format=request.param,
    )
    for i in range(30):
        audit.write(make_record(i))
    audit.close()
    witness = Cosigner.generate("w1.example")
    newest = checkpoints(directory)[-1]
    note = newest.with_signatures([witness.cosign(newest.checkpoint, 1_760_000_000)])
    (directory / COSIGNED_FILE).write_text(note.note() + "\n")
    wkey = tmp_path / "w1.pub"
    wkey.write_text(witness.public_key.vkey())
    return directory, public, signer, witness, wkey


def test_receipt_verifies_with_the_cli_and_independent_code(
    log: tuple[Path, Path, Signer, Cosigner, Path], tmp_path: Path
) -> None:
    directory, public, signer, witness, wkey = log
    out = tmp_path / "dec.tlog-proof"
    args = ["prove", str(directory), "dec-000005", "--receipt", "--origin", ORIGIN]
    assert main([*args, "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    vkeys = (signer.public_key.vkey(), witness.public_key.vkey())
    log_format = int((directory / "format").read_text())
    assert _independent_check(text, *vkeys, ORIGIN, log_format) == "dec-000005"
    with pytest.raises(InvalidSignature):
        _independent_check(text, *vkeys, ORIGIN, 3 - log_format)
    check = ["verify-receipt", str(out), "--public-key", str(public), "--origin", ORIGIN]
    assert main([*check, "--witness-key", str(wkey), "--decision-id", "dec-000005"]) == 0
    assert main([*check, "--witness-key", str(wkey), "--decision-id", "dec-000006"]) == 1
    assert main([*check[:-1], "other.example/log"]) == 1


def test_receipt_without_the_quorum_of_cosignatures_fails(
    log: tuple[Path, Path, Signer, Cosigner, Path], tmp_path: Path
) -> None:
    directory, public, _, _, wkey = log
    (directory / COSIGNED_FILE).unlink()
    out = tmp_path / "r"
    assert (
        main(
            [
                "prove",
                str(directory),
                "--seq",
                "3",
                "--receipt",
                "--out",
                str(out),
                "--origin",
                ORIGIN,
            ]
        )
        == 0
    )
    check = ["verify-receipt", str(out), "--public-key", str(public), "--origin", ORIGIN]
    assert main(check) == 0
    assert main([*check, "--witness-key", str(wkey)]) == 1


def test_receipt_for_a_record_later_rewritten_fails(
    log: tuple[Path, Path, Signer, Cosigner, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, public, _, _, wkey = log
    out = tmp_path / "r"
    assert (
        main(
            [
                "prove",
                str(directory),
                "dec-000006",
                "--receipt",
                "--out",
                str(out),
                "--origin",
                ORIGIN,
            ]
        )
        == 0
    )
    seg = list_segments(directory)[0].path
    lines = seg.read_bytes().split(b"\n")
    assert b'"verdict":"block"' in lines[6]
    lines[6] = lines[6].replace(b'"verdict":"block"', b'"verdict":"allow"')
    seg.write_bytes(b"\n".join(lines))
    # the rewritten record cannot get a receipt from the signed tree
    capsys.readouterr()
    again = ["prove", str(directory), "dec-000006", "--receipt", "--origin", ORIGIN]
    again += ["--out", str(tmp_path / "r2")]
    assert main(again) == 2
    assert "does not prove seq 6" in capsys.readouterr().err
    # nor can the old receipt be made to carry the rewritten record
    text = out.read_text().split("\n")
    text[1] = "extra " + base64.b64encode(lines[6]).decode()
    forged = tmp_path / "forged"
    forged.write_text("\n".join(text))
    check = ["verify-receipt", str(forged), "--public-key", str(public), "--origin", ORIGIN]
    assert main([*check, "--witness-key", str(wkey)]) == 1
    assert "does not lead to the signed root" in capsys.readouterr().out


def test_prove_refuses_a_log_of_another_origin(
    log: tuple[Path, Path, Signer, Cosigner, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory = log[0]
    assert main(["prove", str(directory), "--seq", "1", "--origin", "other.example/log"]) == 2
    assert "not 'other.example/log'" in capsys.readouterr().err
