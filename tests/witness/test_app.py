"""The witness's HTTP interface, served by Starlette; its state survives a restart."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.cli.main import main
from kzai_guard.witness.app import witness_app
from kzai_guard.witness.config import load_witness_config
from kzai_guard.witness.protocol import encode_add_checkpoint
from kzai_guard.witness.store import WitnessStore

from .helpers import proof, signed, write_config

ORIGIN = "example.com/audit"
LEAVES = [b"r%d" % i for i in range(30)]


def _client(tmp_path: Path, signer: Signer, cosigner: Cosigner) -> tuple[TestClient, WitnessStore]:
    store = WitnessStore(tmp_path / "state" / "w.sqlite3")
    app = witness_app(cosigner, {ORIGIN: Keyring([signer.public_key])}, store, clock=lambda: 99.0)
    return TestClient(app), store


def test_add_checkpoint_cosigns_then_answers_409_with_the_held_size(tmp_path: Path) -> None:
    signer, cosigner = Signer.generate("log"), Cosigner.generate("w1")
    client, store = _client(tmp_path, signer, cosigner)
    note = signed(signer, ORIGIN, LEAVES[:10])
    answer = client.post("/add-checkpoint", content=encode_add_checkpoint(0, [], note.note()))
    assert answer.status_code == 200
    cosigned = SignedCheckpoint.parse(note.note() + answer.text)
    assert cosigner.public_key.cosigned(cosigned) == 99
    stale = signed(signer, ORIGIN, LEAVES[:20])
    answer = client.post("/add-checkpoint", content=encode_add_checkpoint(0, [], stale.note()))
    assert (answer.status_code, answer.text) == (409, "10\n")
    assert answer.headers["content-type"] == "text/x.tlog.size"
    body = encode_add_checkpoint(10, proof(LEAVES[:20], 10), stale.note())
    assert client.post("/add-checkpoint", content=body).status_code == 200
    monitor = client.get(f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint")
    kept = SignedCheckpoint.parse(monitor.text)
    assert kept.checkpoint == stale.checkpoint
    assert cosigner.public_key.cosigned(kept) == 99
    assert kept.status(Keyring([signer.public_key])).value == "valid"
    store.close()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    for path in (tmp_path / "state").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_malformed_body_is_400_and_unknown_monitor_origin_404(tmp_path: Path) -> None:
    client, store = _client(tmp_path, Signer.generate("log"), Cosigner.generate("w1"))
    assert client.post("/add-checkpoint", content=b"hello").status_code == 400
    assert client.get("/" + "0" * 64 + "/checkpoint").status_code == 404
    store.close()


def test_state_survives_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    signer, cosigner = Signer.generate("log"), Cosigner.generate("w1")
    client, store = _client(tmp_path, signer, cosigner)
    note = signed(signer, ORIGIN, LEAVES[:10])
    client.post("/add-checkpoint", content=encode_add_checkpoint(0, [], note.note()))
    store.close()
    client, store = _client(tmp_path, signer, cosigner)
    fork = signed(signer, ORIGIN, [*LEAVES[:9], b"other"])
    answer = client.post("/add-checkpoint", content=encode_add_checkpoint(10, [], fork.note()))
    assert answer.status_code == 422
    store.close()


def test_config_file_and_keygen_command(tmp_path: Path, capsys: object) -> None:
    signer = Signer.generate("log")
    config = write_config(tmp_path, "w.example/1", ORIGIN, signer.public_key.vkey())
    loaded = load_witness_config(config)
    assert loaded.cosigner.name == "w.example/1"
    assert loaded.state == tmp_path / "state" / "witness.sqlite3"
    assert list(loaded.logs) == [ORIGIN]
    assert main(["witness", "keygen", str(tmp_path / "k2"), "--name", "w2"]) == 0
    assert oct(os.stat(tmp_path / "k2" / "witness.key").st_mode & 0o777) == "0o600"
    config.write_text('key = "keys/witness.key"\nstate = "s"\n')
    try:
        load_witness_config(config)
    except Exception as exc:
        assert "[[log]]" in str(exc)
    else:
        raise AssertionError("a config without logs was accepted")


def test_serve_with_a_broken_config_exits_two_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "witness.toml"
    config.write_text('key = "missing.key"\nstate = "s"\n[[log]]\norigin = "o"\nkeys = []\n')
    assert main(["witness", "serve", "--config", str(config)]) == 2
    assert "cannot read witness private key" in capsys.readouterr().err
