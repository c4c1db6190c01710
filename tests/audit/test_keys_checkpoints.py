"""Keys, key ids and signed checkpoints in the C2SP signed-note format."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kzai_guard.audit.checkpoint import (
    Checkpoint,
    CheckpointStatus,
    SignedCheckpoint,
    parse_notes,
)
from kzai_guard.audit.keys import Keyring, PublicKey, Signer, key_id, load_public_key
from kzai_guard.cli.main import main
from kzai_guard.errors import ConfigurationError

ROOT = bytes(range(32))


def test_key_id_is_first_four_bytes_of_sha256_name_newline_alg_key(signer: Signer) -> None:
    raw = signer.public_key.raw
    expected = hashlib.sha256(b"test-key\n\x01" + raw).digest()[:4]
    assert key_id("test-key", raw) == expected
    assert signer.key_id == expected


def test_note_text_is_body_blank_line_and_em_dash_signature_line(signer: Signer) -> None:
    note = Checkpoint("example.org/log", 42, ROOT).sign([signer]).note()
    body, _, sigs = note.partition("\n\n")
    assert body + "\n" == f"example.org/log\n42\n{base64.b64encode(ROOT).decode()}\n"
    lines = sigs.splitlines()
    assert len(lines) == 1
    dash, name, blob = lines[0].split(" ")
    assert (dash, name) == ("\u2014", "test-key")
    raw = base64.b64decode(blob)
    assert raw[:4] == signer.key_id
    assert signer.public_key.verify(raw[4:], (body + "\n").encode())


def test_note_round_trips_and_verifies(signer: Signer, keyring: Keyring) -> None:
    signed = Checkpoint("o", 7, ROOT).sign([signer])
    parsed = SignedCheckpoint.parse(signed.note())
    assert parsed == signed
    assert parsed.status(keyring) is CheckpointStatus.VALID


def test_changed_root_is_forged(signer: Signer, keyring: Keyring) -> None:
    note = Checkpoint("o", 7, ROOT).sign([signer]).note()
    other = base64.b64encode(bytes(32)).decode()
    tampered = note.replace(base64.b64encode(ROOT).decode(), other)
    assert SignedCheckpoint.parse(tampered).status(keyring) is CheckpointStatus.FORGED


def test_signature_of_untrusted_key_is_unknown_key(keyring: Keyring) -> None:
    stranger = Signer.generate("test-key")
    signed = Checkpoint("o", 7, ROOT).sign([stranger])
    assert signed.status(keyring) is CheckpointStatus.UNKNOWN_KEY


def test_cosignature_of_unknown_witness_is_ignored(signer: Signer, keyring: Keyring) -> None:
    witness = Signer.generate("witness")
    signed = Checkpoint("o", 7, ROOT).sign([signer, witness])
    assert SignedCheckpoint.parse(signed.note()).status(keyring) is CheckpointStatus.VALID


@pytest.mark.parametrize(
    "text",
    [
        "o\n7\nAAAA\n\n\u2014 k AAAAAAAA\n",
        "o\nx\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 k AAAAAAAA\n",
        "o\n07\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 k AAAAAAAA\n",
        "o\n7\n" + base64.b64encode(ROOT).decode() + "\n\n- k AAAAAAAA\n",
        "o\n7\n" + base64.b64encode(ROOT).decode() + "\n\u2014 k AAAAAAAA\n",
    ],
)
def test_malformed_notes_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        SignedCheckpoint.parse(text)


def test_parse_notes_skips_a_torn_last_note(signer: Signer) -> None:
    a = Checkpoint("o", 1, ROOT).sign([signer]).note() + "\n"
    b = Checkpoint("o", 2, ROOT).sign([signer]).note() + "\n"
    notes = list(parse_notes(a + b[: len(b) // 2]))
    assert [n.checkpoint.size for n in notes if isinstance(n, SignedCheckpoint)] == [1]
    assert len(notes) == 1


def test_vkey_round_trip(signer: Signer) -> None:
    vkey = signer.public_key.vkey()
    assert vkey.startswith(f"test-key+{signer.key_id.hex()}+")
    assert PublicKey.from_vkey(vkey) == signer.public_key


def test_vkey_with_wrong_id_is_rejected(signer: Signer) -> None:
    name, _, key = signer.public_key.vkey().split("+", 2)
    with pytest.raises(ValueError, match="does not match"):
        PublicKey.from_vkey(f"{name}+00000000+{key}")


def test_signer_from_callable_signs_like_the_key() -> None:
    key = Ed25519PrivateKey.generate()
    raw = Signer.from_private_key(key, "kms").public_key.raw
    calls: list[bytes] = []

    def remote_sign(message: bytes) -> bytes:
        calls.append(message)
        return key.sign(message)

    signer = Signer.from_callable("kms", raw, remote_sign)
    signed = Checkpoint("o", 3, ROOT).sign([signer])
    assert calls == [Checkpoint("o", 3, ROOT).body()]
    assert signed.status(Keyring([signer.public_key])) is CheckpointStatus.VALID


def test_signer_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert main(["keygen", "--out", str(tmp_path), "--name", "env-key"]) == 0
    monkeypatch.setenv("AUDIT_KEY", (tmp_path / "env-key.key").read_text())
    monkeypatch.setenv("AUDIT_KEY_NAME", "env-key")
    signer = Signer.from_env("AUDIT_KEY")
    assert signer.public_key == load_public_key(tmp_path / "env-key.pub")


def test_signer_from_env_without_name_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUDIT_KEY", "-----BEGIN PRIVATE KEY-----")
    monkeypatch.delenv("AUDIT_KEY_NAME", raising=False)
    with pytest.raises(ConfigurationError, match="AUDIT_KEY_NAME"):
        Signer.from_env("AUDIT_KEY")


def test_keygen_writes_private_key_0600_and_vkey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "--out", str(tmp_path / "k"), "--name", "prod-2026"]) == 0
    private = tmp_path / "k" / "prod-2026.key"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    signer = Signer.from_file(private)
    assert signer.name == "prod-2026"
    public = load_public_key(tmp_path / "k" / "prod-2026.pub")
    assert public == signer.public_key
    assert f"vkey:        {public.vkey()}" in capsys.readouterr().out


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--out", str(tmp_path), "--name", "k"]) == 0
    assert main(["keygen", "--out", str(tmp_path), "--name", "k"]) == 2
    assert "exists; choose another --name" in capsys.readouterr().err


def test_key_names_with_spaces_or_plus_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="not valid"):
        Signer.generate("bad name")
    with pytest.raises(ConfigurationError, match="not valid"):
        Signer.generate("bad+name")


def test_pem_public_key_file_loads_with_file_name_as_key_name(
    tmp_path: Path, signer: Signer
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pem = Ed25519PublicKey.from_public_bytes(signer.public_key.raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "test-key.pem").write_bytes(pem)
    assert load_public_key(tmp_path / "test-key.pem") == signer.public_key
