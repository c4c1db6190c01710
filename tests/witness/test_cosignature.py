"""Cosignatures as C2SP tlog-cosignature defines them, checked by code written from the spec."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kzai_guard.audit.checkpoint import Checkpoint, CheckpointStatus, SignedCheckpoint
from kzai_guard.audit.cosignature import (
    Cosigner,
    CosignerKey,
    WitnessPolicy,
    write_cosigner_keypair,
)
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.errors import ConfigurationError

_CP = Checkpoint("example.com/log", 5, hashlib.sha256(b"root").digest())


def test_cosignature_line_verifies_with_the_spec_key_id_message_and_layout() -> None:
    cosigner = Cosigner.generate("witness.example/w1")
    name, kid, sig = cosigner.cosign(_CP, 1679315147)
    raw = cosigner.public_key.raw
    assert name == "witness.example/w1"
    assert kid == hashlib.sha256(b"witness.example/w1\n\x04" + raw).digest()[:4]
    assert struct.unpack(">Q", sig[:8]) == (1679315147,)
    message = (
        b"cosignature/v1\ntime 1679315147\nexample.com/log\n5\n"
        + base64.b64encode(_CP.root)
        + b"\n"
    )
    Ed25519PublicKey.from_public_bytes(raw).verify(sig[8:], message)


def test_a_cosigned_note_round_trips_and_keeps_the_log_signature_valid() -> None:
    signer = Signer.generate("log-key")
    cosigner = Cosigner.generate("w1")
    note = _CP.sign([signer]).with_signatures([cosigner.cosign(_CP, 7)])
    parsed = SignedCheckpoint.parse(note.note())
    assert parsed == note
    assert parsed.status(Keyring([signer.public_key])) is CheckpointStatus.VALID
    assert cosigner.public_key.cosigned(parsed) == 7


def test_a_cosignature_over_another_body_or_by_another_key_is_not_counted() -> None:
    cosigner, other = Cosigner.generate("w1"), Cosigner.generate("w1")
    forged = Checkpoint(_CP.origin, 6, _CP.root)
    note = _CP.sign([Signer.generate("k")])
    name, kid, sig = cosigner.cosign(forged, 7)
    assert cosigner.public_key.cosigned(note.with_signatures([(name, kid, sig)])) is None
    assert other.public_key.cosigned(note.with_signatures([cosigner.cosign(_CP, 7)])) is None


def test_vkey_uses_type_0x04_and_round_trips() -> None:
    key = Cosigner.generate("w.example/1").public_key
    text = key.vkey()
    assert base64.b64decode(text.split("+", 2)[2])[:1] == b"\x04"
    assert CosignerKey.from_vkey(text) == key
    with pytest.raises(ValueError):
        CosignerKey.from_vkey(Signer.generate("w.example/1").public_key.vkey())


def test_keygen_writes_a_private_key_file_and_reloads(tmp_path: Path) -> None:
    cosigner = write_cosigner_keypair(tmp_path / "k", "w1")
    assert (tmp_path / "k" / "witness.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o700
    again = Cosigner.from_file(tmp_path / "k" / "witness.key")
    assert again.public_key == cosigner.public_key
    with pytest.raises(ConfigurationError, match="exists"):
        write_cosigner_keypair(tmp_path / "k", "w1")


def test_policy_counts_distinct_trusted_witnesses() -> None:
    w1, w2, w3 = (Cosigner.generate(f"w{i}") for i in range(3))
    note = _CP.sign([Signer.generate("k")])
    policy = WitnessPolicy.of([w1.public_key, w2.public_key, w3.public_key], 2)
    one = note.with_signatures([w1.cosign(_CP, 1)])
    assert not policy.satisfied([one])
    assert policy.satisfied([one, note.with_signatures([w3.cosign(_CP, 2)])])
    with pytest.raises(ConfigurationError, match="quorum"):
        WitnessPolicy.of([w1.public_key], 2)
