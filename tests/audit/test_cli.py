"""The command line verbs: keygen, verify, prove, verify-proof, consistency."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kzai_guard.audit.keys import Keyring, Signer, load_public_key, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import verify_bundle
from kzai_guard.audit.segments import list_segments
from kzai_guard.cli.main import main
from kzai_guard.cli.trust import ORIGIN_NEEDED

from .conftest import FORMATS, leaf_of, make_record

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "cli.example.kz/audit"


@pytest.fixture(params=FORMATS, ids=lambda f: f"format{f}")
def keyed_log(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, Path, Signer]:
    """A closed log of 23 records (3 checkpoints) in each format and the path of its public
    key."""
    _, public, signer = write_keypair(tmp_path / "keys", "cli-key")
    directory = tmp_path / "audit"
    log = AuditLog.open(
        directory,
        signer=signer,
        origin=ORIGIN,
        checkpoint_every=10,
        durability="sync",
        log_format=request.param,
    )
    for i in range(23):
        log.write(make_record(i))
    log.close()
    return directory, public, signer


def test_verify_ok_exits_zero(
    keyed_log: tuple[Path, Path, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _ = keyed_log
    assert main(["verify", str(directory), "--public-key", str(public), "--origin", ORIGIN]) == 0
    assert capsys.readouterr().out == (
        "OK: 23 records (seq 0..22), 3 checkpoints, signed up to size 23 by cli-key\n"
    )


def test_verify_json_report(
    keyed_log: tuple[Path, Path, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _ = keyed_log
    assert (
        main(["verify", str(directory), "--public-key", str(public), "--json", "--origin", ORIGIN])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "checkpoints": 3,
        "directory": str(directory),
        "first_seq": 0,
        "key_names": ["cli-key"],
        "ok": True,
        "problem": None,
        "records": 23,
        "roots": {},
        "signed_size": 23,
        "witnessed_size": None,
        "cosigners": [],
    }


def test_verify_names_the_first_bad_seq_and_exits_one(
    keyed_log: tuple[Path, Path, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _ = keyed_log
    seg = list_segments(directory)[0].path
    lines = seg.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b'"verdict":"allow"', b'"verdict":"block"')
    seg.write_bytes(b"\n".join(lines))
    assert main(["verify", str(directory), "--public-key", str(public), "--origin", ORIGIN]) == 1
    assert capsys.readouterr().out == (
        "FAILED at seq 4: altered: record 4 was changed: its hash no longer matches the prev "
        "of record 5\n"
    )


def test_verify_with_a_wrong_key_reports_unknown_key(
    keyed_log: tuple[Path, Path, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _, _ = keyed_log
    other = Signer.generate("cli-key").public_key.vkey()
    assert main(["verify", str(directory), "--public-key", other, "--origin", ORIGIN]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED at seq 9: unknown-key-checkpoint: the checkpoint for size 10")


def test_verify_missing_directory_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey = Signer.generate("k").public_key.vkey()
    assert main(["verify", str(tmp_path / "nope"), "--public-key", vkey, "--origin", ORIGIN]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_verify_without_key_uses_demo_key_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog.open(tmp_path / "a", origin=ORIGIN)
    log.write(make_record(0))
    log.close()
    assert main(["verify", str(tmp_path / "a"), "--origin", ORIGIN]) == 0
    captured = capsys.readouterr()
    assert "no --public-key given; trusting the keys stored in" in captured.err
    assert captured.out.startswith("OK: 1 records")


def _independent_inclusion_check(bundle: dict[str, object], public_key: bytes) -> bool:
    """RFC 9162 2.1.3.2 and the C2SP note signature, written from the specs only."""
    note = str(bundle["checkpoint"])
    body, _, sigs = note.partition("\n\n")
    origin, size_text, root_b64 = body.split("\n")
    blob = base64.b64decode(sigs.split(" ")[2])
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(blob[4:], (body + "\n").encode())
    except Exception:
        return False
    index, size = int(str(bundle["leaf_index"])), int(size_text)
    entry = str(bundle["entry"]).encode()
    if bundle.get("log_format", 1) == 2:
        entry = hashlib.sha256(entry).digest()  # the tree's entry is the line's commitment
    r = hashlib.sha256(b"\x00" + entry).digest()
    fn, sn = index, size - 1
    for p64 in bundle["audit_path"]:  # type: ignore[attr-defined]
        p = base64.b64decode(p64)
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == base64.b64decode(root_b64) and origin == bundle["origin"]


def test_prove_writes_a_bundle_any_rfc9162_checker_accepts(
    keyed_log: tuple[Path, Path, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, signer = keyed_log
    out = tmp_path / "proof.json"
    assert main(["prove", str(directory), "dec-000017", "--out", str(out), "--origin", ORIGIN]) == 0
    bundle = json.loads(out.read_text())
    assert (bundle["format"], bundle["leaf_index"], bundle["tree_size"]) == (
        "kzai-guard/inclusion-proof/v1",
        17,
        23,
    )
    assert json.loads(bundle["entry"])["rec"]["id"] == "dec-000017"
    assert _independent_inclusion_check(bundle, signer.public_key.raw)
    capsys.readouterr()
    assert main(["verify-proof", str(out), "--public-key", str(public), "--origin", ORIGIN]) == 0
    assert capsys.readouterr().out == (
        f"OK: record 'dec-000017' is entry 17 of {bundle['origin']} at size 23 (signed)\n"
    )


def test_verify_proof_rejects_an_altered_entry(
    keyed_log: tuple[Path, Path, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _ = keyed_log
    out = tmp_path / "proof.json"
    assert main(["prove", str(directory), "dec-000003", "--out", str(out), "--origin", ORIGIN]) == 0
    bundle = json.loads(out.read_text())
    bundle["entry"] = bundle["entry"].replace('"verdict":"block"', '"verdict":"allow"')
    leaf = leaf_of(bundle.get("log_format", 1), bundle["entry"].encode())
    bundle["leaf_hash"] = base64.b64encode(leaf).decode()
    out.write_text(json.dumps(bundle))
    capsys.readouterr()
    assert main(["verify-proof", str(out), "--public-key", str(public), "--origin", ORIGIN]) == 1
    assert capsys.readouterr().out == ("FAILED: the audit path does not lead to the signed root\n")


def test_verify_proof_rejects_an_untrusted_key(
    keyed_log: tuple[Path, Path, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _, _ = keyed_log
    out = tmp_path / "proof.json"
    assert main(["prove", str(directory), "--seq", "5", "--out", str(out), "--origin", ORIGIN]) == 0
    capsys.readouterr()
    other = Signer.generate("cli-key").public_key.vkey()
    assert main(["verify-proof", str(out), "--public-key", other, "--origin", ORIGIN]) == 1
    assert capsys.readouterr().out == (
        "FAILED: the checkpoint is unknown-key: not signed by a trusted key\n"
    )


def test_prove_unknown_decision_exits_two(
    keyed_log: tuple[Path, Path, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _, _ = keyed_log
    assert main(["prove", str(directory), "no-such-decision", "--origin", ORIGIN]) == 2
    assert "decision 'no-such-decision' is not in the retained log" in capsys.readouterr().err


def test_consistency_between_checkpoints_shows_the_log_only_grew(
    keyed_log: tuple[Path, Path, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _ = keyed_log
    out = tmp_path / "grow.json"
    args = ["consistency", str(directory), "10", "23", "--out", str(out), "--origin", ORIGIN]
    assert main([*args, "--public-key", str(public)]) == 0
    bundle = json.loads(out.read_text())
    assert (bundle["old_size"], bundle["new_size"]) == (10, 23)
    assert bundle["old_checkpoint"] is not None
    origin = bundle["origin"]
    assert capsys.readouterr().err == (
        f"OK: {origin} at size 23 extends size 10 (old root signed)\n"
    )
    assert main(["verify-proof", str(out), "--public-key", str(public), "--origin", ORIGIN]) == 0
    bundle["old_root"] = base64.b64encode(bytes(32)).decode()
    bundle["old_checkpoint"] = None
    out.write_text(json.dumps(bundle))
    capsys.readouterr()
    assert main(["verify-proof", str(out), "--public-key", str(public), "--origin", ORIGIN]) == 1
    assert capsys.readouterr().out == "FAILED: the proof does not show size 23 extends size 10\n"


def test_consistency_to_a_size_without_checkpoint_exits_two(
    keyed_log: tuple[Path, Path, Signer], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _, _ = keyed_log
    assert main(["consistency", str(directory), "3", "15", "--origin", ORIGIN]) == 2
    assert "no checkpoint has size 15; recent sizes: 10, 20, 23" in capsys.readouterr().err


def test_cli_runs_as_a_real_process(keyed_log: tuple[Path, Path, Signer], tmp_path: Path) -> None:
    directory, public, _ = keyed_log
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kzai_guard.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    done = run("verify", str(directory), "--public-key", str(public), "--origin", ORIGIN)
    assert (done.returncode, done.stdout) == (
        0,
        "OK: 23 records (seq 0..22), 3 checkpoints, signed up to size 23 by cli-key\n",
    )
    bundle = tmp_path / "p.json"
    assert (
        run(
            "prove", str(directory), "dec-000000", "--out", str(bundle), "--origin", ORIGIN
        ).returncode
        == 0
    )
    done = run(
        "verify-proof",
        str(bundle),
        "--public-key",
        load_public_key(public).vkey(),
        "--origin",
        ORIGIN,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: record 'dec-000000' is entry 0 of ")
    keys = run("keygen", "--out", str(tmp_path / "newkeys"), "--name", "proc-key")
    assert keys.returncode == 0
    assert (tmp_path / "newkeys" / "proc-key.key").exists()


@pytest.mark.parametrize(
    ("verb", "operands"),
    [
        ("verify", ["{dir}", "--public-key", "{pub}"]),
        ("prove", ["{dir}", "dec-000003"]),
        ("prove", ["{dir}", "dec-000003", "--receipt"]),
        ("consistency", ["{dir}", "10", "--public-key", "{pub}"]),
        ("verify-proof", ["{bundle}", "--public-key", "{pub}"]),
        ("verify-receipt", ["{bundle}", "--public-key", "{pub}"]),
    ],
)
def test_every_verb_that_checks_a_checkpoint_refuses_without_an_expected_origin(
    keyed_log: tuple[Path, Path, Signer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    verb: str,
    operands: list[str],
) -> None:
    directory, public, _ = keyed_log
    bundle = tmp_path / "proof.json"
    assert (
        main(["prove", str(directory), "dec-000003", "--out", str(bundle), "--origin", ORIGIN]) == 0
    )
    capsys.readouterr()
    names = {"dir": str(directory), "pub": str(public), "bundle": str(bundle)}
    assert main([verb, *(o.format(**names) for o in operands)]) == 2
    assert capsys.readouterr() == ("", f"kzai-guard {verb}: {ORIGIN_NEEDED}\n")


def test_a_key_bound_to_the_origin_stands_for_origin_in_every_verb(
    keyed_log: tuple[Path, Path, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _, signer = keyed_log
    bound = tmp_path / "bound.pub"
    bound.write_text(f"{ORIGIN} {signer.public_key.vkey()}\n")
    bundle = tmp_path / "proof.json"
    key = ["--public-key", str(bound)]
    assert main(["verify", str(directory), *key]) == 0
    assert main(["prove", str(directory), "dec-000003", "--out", str(bundle), *key]) == 0
    assert main(["verify-proof", str(bundle), *key]) == 0
    assert main(["consistency", str(directory), "10", "--out", str(tmp_path / "c"), *key]) == 0
    capsys.readouterr()
    other = tmp_path / "other.pub"
    other.write_text(f"other.example.kz/audit {signer.public_key.vkey()}\n")
    for args in (
        ["prove", str(directory), "dec-000003", "--public-key", str(other)],
        ["consistency", str(directory), "10", "--public-key", str(other)],
    ):
        assert main(args) == 2
        assert capsys.readouterr().err == (
            f"kzai-guard {args[0]}: the log is {ORIGIN!r}, not 'other.example.kz/audit'\n"
        )


def test_a_bundle_of_another_log_signed_with_the_same_key_fails_verify_proof(
    keyed_log: tuple[Path, Path, Signer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, public, _ = keyed_log
    out = tmp_path / "proof.json"
    assert main(["prove", str(directory), "dec-000003", "--out", str(out), "--origin", ORIGIN]) == 0
    capsys.readouterr()
    other = "other.example.kz/audit"
    assert main(["verify-proof", str(out), "--public-key", str(public), "--origin", other]) == 1
    assert capsys.readouterr().out == (f"FAILED: the bundle is for log {ORIGIN!r}, not {other!r}\n")
    keyring = Keyring.load([public])
    bundle = json.loads(out.read_text())
    assert verify_bundle(bundle, keyring, origin=ORIGIN).ok
    assert not verify_bundle(bundle, keyring, origin=other).ok
