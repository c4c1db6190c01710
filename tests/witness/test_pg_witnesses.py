"""Witnesses for a log in PostgreSQL: one process of all sends, the cosignatures are kept in the
database and copied out, so verify checks them on a URL; a witness that is down delays
cosigning, never decisions."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.cosignature import Cosigner, CosignerKey, load_cosigner_key
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.witnesses import WitnessEndpoint, Witnesses
from kzai_guard.cli.main import main
from tests.audit.conftest import make_record
from tests.audit.pg_tampering import delete_checkpoints, pg_lines, store_lines
from tests.http.test_person_routes import app_with, loan_policy
from tests.postgres import fresh_database

from .helpers import free_port, start_witness, write_config

ORIGIN = "audit.example.kz/credit-pg"


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as made:
        yield made


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _witnesses(ports: list[int], keys: list[CosignerKey]) -> Witnesses:
    return Witnesses(
        [WitnessEndpoint.of(f"http://127.0.0.1:{p}", k) for p, k in zip(ports, keys, strict=True)],
        timeout_s=2.0,
        retry_s=0.05,
        max_retry_s=0.2,
        close_wait_s=5.0,
    )


def _cosigned_rows(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT size, note FROM kzg_log_cosignatures ORDER BY id").fetchall()
    return [(int(size), str(note)) for size, note in rows]


def _wait_for(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_one_writer_of_two_sends_and_verify_on_the_url_counts_the_cosignatures(
    url: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    signer = Signer.generate("log-key")
    configs = [
        write_config(tmp_path / f"w{i}", f"w{i}.example", ORIGIN, signer.public_key.vkey())
        for i in (1, 2)
    ]
    ports = [free_port(), free_port()]
    processes.append(start_witness(configs[1], ports[1]))  # the first one is down for now
    keys = [load_cosigner_key(c.parent / "keys" / "witness.pub") for c in configs]
    witnesses = [_witnesses(ports, keys), _witnesses(ports, keys)]
    logs = [
        AuditLog.open(
            url,
            signer=signer,
            origin=ORIGIN,
            checkpoint_every=10,
            seal_personal_fields=False,
            witnesses=w,
        )
        for w in witnesses
    ]
    try:
        for i in range(30):  # both writers sign checkpoints; decisions never wait
            logs[i % 2].write(make_record(i)).result()  # type: ignore[union-attr]
        assert _wait_for(lambda: any(w.wait(30, timeout=0, count=1) for w in witnesses))
        # one process sends: the other's witness threads never got a checkpoint
        senders = [
            w for w in witnesses if any(s["cosigned_size"] != -1 for s in w.status().values())
        ]
        assert len(senders) == 1
        status = senders[0].status()
        assert "unreachable" in str(status[f"http://127.0.0.1:{ports[0]}"]["error"])
        processes.append(start_witness(configs[0], ports[0]))
        assert senders[0].wait(30, timeout=30)
    finally:
        for log in logs:
            log.close()
    notes = [SignedCheckpoint.parse(note) for size, note in _cosigned_rows(url) if size == 30]
    cosigners = {k.name for k in keys for n in notes if k.cosigned(n) is not None}
    assert cosigners == {"w1.example", "w2.example"}
    args = ["verify", url, "--public-key", signer.public_key.vkey(), "--origin", ORIGIN]
    for config in configs:
        args += ["--witness-key", str(config.parent / "keys" / "witness.pub")]
    assert main(args) == 0
    assert "cosigned by" in capsys.readouterr().out


def test_another_writer_takes_over_sending_when_the_sender_closes(
    url: str, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    signer = Signer.generate("log-key")
    config = write_config(tmp_path / "w1", "w1.example", ORIGIN, signer.public_key.vkey())
    port = free_port()
    processes.append(start_witness(config, port))
    key = load_cosigner_key(config.parent / "keys" / "witness.pub")
    witnesses = [_witnesses([port], [key]), _witnesses([port], [key])]
    options = {"signer": signer, "origin": ORIGIN, "checkpoint_every": 5}
    first = AuditLog.open(url, seal_personal_fields=False, witnesses=witnesses[0], **options)
    second = AuditLog.open(url, seal_personal_fields=False, witnesses=witnesses[1], **options)
    try:
        for i in range(5):
            first.write(make_record(i)).result()  # type: ignore[union-attr]
        assert _wait_for(lambda: any(w.wait(5, timeout=0) for w in witnesses))
        leader = 0 if witnesses[0].wait(5, timeout=0) else 1
        (first, second)[leader].close()
        for i in range(5, 10):
            (first, second)[1 - leader].write(make_record(i)).result()  # type: ignore[union-attr]
        assert witnesses[1 - leader].wait(10, timeout=30)
    finally:
        first.close()
        second.close()
    assert [size for size, _ in _cosigned_rows(url)][-1] == 10


def test_a_guard_on_postgresql_takes_witnesses_and_decides_while_they_are_down(
    url: str,
) -> None:
    key = Cosigner.generate("w1.example").public_key
    witnesses = Witnesses([WitnessEndpoint.of(f"http://127.0.0.1:{free_port()}", key)])
    guard = kg.Guard(
        [loan_policy()],
        store="memory://",
        audit=url,
        audit_signer=Signer.generate("log-key"),
        audit_witnesses=witnesses,
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        subject=kg.from_header("X-Person"),
        contact="c",
    )
    try:
        client = TestClient(app_with(guard, []))
        guard.consents.grant("A-1", "credit", "v1")
        for _ in range(3):
            assert client.post("/loans/A-1", headers={"X-Person": "A-1"}).status_code == 200
    finally:
        guard.close()
    assert _cosigned_rows(url) == []


def test_newest_rows_dropped_with_their_checkpoints_pass_alone_but_not_against_the_witness(
    url: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    signer = Signer.generate("log-key")
    config = write_config(tmp_path / "w1", "w1.example", ORIGIN, signer.public_key.vkey())
    port = free_port()
    processes.append(start_witness(config, port))
    key = load_cosigner_key(config.parent / "keys" / "witness.pub")
    witnesses = _witnesses([port], [key])
    log = AuditLog.open(
        url,
        signer=signer,
        origin=ORIGIN,
        checkpoint_every=6,
        seal_personal_fields=False,
        witnesses=witnesses,
    )
    for i in range(12):
        log.write(make_record(i)).result()  # type: ignore[union-attr]
    assert witnesses.wait(12, timeout=30)
    log.close()
    witness_url = f"http://127.0.0.1:{port}/{hashlib.sha256(ORIGIN.encode()).hexdigest()}"
    args = ["verify", url, "--public-key", signer.public_key.vkey(), "--origin", ORIGIN]
    assert main([*args, "--checkpoint", f"{witness_url}/checkpoint"]) == 0
    # the newest six rows and every trace of them are removed, with SQL
    store_lines(url, pg_lines(url)[:6])
    delete_checkpoints(url, above=6)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM kzg_log_cosignatures")
    capsys.readouterr()
    assert main(args) == 0  # an older, shorter log
    assert main([*args, "--checkpoint", f"{witness_url}/checkpoint"]) == 1
    assert "rolled-back" in capsys.readouterr().out
