"""A log with two witnesses in their own processes, one of them offline for a while."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.cosignature import Cosigner, load_cosigner_key
from kzai_guard.audit.keys import Signer, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.segments import list_segments
from kzai_guard.audit.witnesses import (
    COSIGNED_FILE,
    WitnessEndpoint,
    Witnesses,
    cosigned_note,
    read_cosigned,
)
from kzai_guard.cli.main import main
from kzai_guard.errors import ConfigurationError
from tests.audit.conftest import make_record

from .helpers import free_port, start_witness, write_config

ORIGIN = "audit.example.kz/credit"


def _first_error(witnesses: Witnesses, url: str) -> str:
    """The witness thread's first error (waits for one: a refusal takes one exchange)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        error = witnesses.status()[url]["error"]
        if error is not None:
            return str(error)
        time.sleep(0.02)
    raise AssertionError("no error was reported")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_decisions_go_on_while_a_witness_is_down_and_its_cosignature_arrives_later(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    signer = Signer.generate("log-key")
    configs = [
        write_config(tmp_path / f"w{i}", f"w{i}.example", ORIGIN, signer.public_key.vkey())
        for i in (1, 2)
    ]
    ports = [free_port(), free_port()]
    processes.append(start_witness(configs[1], ports[1]))  # the second of the list
    keys = [load_cosigner_key(c.parent / "keys" / "witness.pub") for c in configs]
    witnesses = Witnesses(
        [WitnessEndpoint.of(f"http://127.0.0.1:{p}", k) for p, k in zip(ports, keys, strict=True)],
        quorum=2,
        timeout_s=2.0,
        retry_s=0.05,
        max_retry_s=0.2,
    )
    directory = tmp_path / "audit"
    log = AuditLog.open(
        directory, signer=signer, origin=ORIGIN, checkpoint_every=10, witnesses=witnesses
    )
    try:
        for i in range(30):  # the log signs a checkpoint every 10 and hands it on
            log.write(make_record(i)).result()  # type: ignore[union-attr]
        note = log.checkpoint()
        assert note is not None and note.checkpoint.size == 30
        assert log.size == 30
        assert witnesses.wait(30, timeout=30, count=1)
        status = witnesses.status()
        assert status[f"http://127.0.0.1:{ports[1]}"]["cosigned_size"] == 30
        assert status[f"http://127.0.0.1:{ports[0]}"]["cosigned_size"] == -1
        assert "unreachable" in str(status[f"http://127.0.0.1:{ports[0]}"]["error"])

        processes.append(start_witness(configs[0], ports[0]))
        assert witnesses.wait(30, timeout=30)
        kept = read_cosigned(directory)
        full = cosigned_note(note, kept)
        assert witnesses.policy.satisfied([full])
        assert {k.cosigned(full) is not None for k in keys} == {True}
    finally:
        witnesses.close()
        log.close()


def test_a_log_that_lost_its_cosignatures_learns_the_witness_size_and_a_fork_is_refused(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    signer = Signer.generate("log-key")
    config = write_config(tmp_path / "w1", "w1.example", ORIGIN, signer.public_key.vkey())
    port = free_port()
    processes.append(start_witness(config, port))
    key = load_cosigner_key(config.parent / "keys" / "witness.pub")
    url = f"http://127.0.0.1:{port}"

    def witnesses() -> Witnesses:
        endpoint = WitnessEndpoint.of(url, key)
        return Witnesses([endpoint], timeout_s=2.0, retry_s=0.05, max_retry_s=0.2)

    def write(directory: Path, first: int, count: int, changed: int | None = None) -> AuditLog:
        log = AuditLog.open(directory, signer=signer, origin=ORIGIN, durability="sync")
        for i in range(first, first + count):
            record = make_record(i, verdict="allow") if i == changed else make_record(i)
            log.write(record).result()  # type: ignore[union-attr]
        return log

    honest = tmp_path / "honest"
    log = write(honest, 0, 10)
    first = witnesses()
    first.start(honest)
    first.submit(log.checkpoint())  # type: ignore[arg-type]
    assert first.wait(10, timeout=30)
    first.close()
    log.close()

    # the cosignatures file is lost; the witness's 409 tells the log where to prove from
    (honest / "cosigned.checkpoints").unlink()
    log = write(honest, 10, 10)
    second = witnesses()
    second.start(honest)
    second.submit(log.checkpoint())  # type: ignore[arg-type]
    assert second.wait(20, timeout=30)
    second.close()
    log.close()

    # the same origin and key, another history: the witness never cosigns it
    forked = tmp_path / "forked"
    log = write(forked, 0, 25, changed=3)
    third = witnesses()
    third.start(forked)
    third.submit(log.checkpoint())  # type: ignore[arg-type]
    assert "HTTP 422" in _first_error(third, url)
    assert not third.wait(25, timeout=0)
    third.close()
    log.close()
    assert read_cosigned(forked) == []

    # a log rolled back below what the witness holds is told so
    short = tmp_path / "short"
    log = write(short, 0, 15)
    fourth = witnesses()
    fourth.start(short)
    fourth.submit(log.checkpoint())  # type: ignore[arg-type]
    error = _first_error(fourth, url)
    assert "holds size 20, beyond the log's newest checkpoint 15" in error
    assert not fourth.wait(15, timeout=0)
    fourth.close()
    log.close()


def test_a_forked_process_starts_its_own_witness_threads(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    signer = Signer.generate("log-key")
    config = write_config(tmp_path / "w1", "w1.example", ORIGIN, signer.public_key.vkey())
    port = free_port()
    processes.append(start_witness(config, port))
    key = load_cosigner_key(config.parent / "keys" / "witness.pub")
    directory = tmp_path / "audit"
    log = AuditLog.open(directory, signer=signer, origin=ORIGIN, durability="sync")
    witnesses = Witnesses([WitnessEndpoint.of(f"http://127.0.0.1:{port}", key)], retry_s=0.05)
    witnesses.start(directory)
    try:
        for i in range(10):
            log.write(make_record(i)).result()  # type: ignore[union-attr]
        witnesses.submit(log.checkpoint())  # type: ignore[arg-type]
        assert witnesses.wait(10, timeout=30)
        for i in range(10, 20):
            log.write(make_record(i)).result()  # type: ignore[union-attr]
        later = log.checkpoint()
        assert later is not None
        pid = os.fork()
        if pid == 0:  # the child: the parent's witness threads are gone
            witnesses.submit(later)
            os._exit(0 if witnesses.wait(20, timeout=30) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert any(n.checkpoint.size == 20 for n in read_cosigned(directory))
    finally:
        witnesses.close()
        log.close()


def test_verify_against_the_witness_checkpoint_url_exposes_a_rollback(
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, public, signer = write_keypair(tmp_path / "keys", "log-key")
    config = write_config(tmp_path / "w1", "w1.example", ORIGIN, signer.public_key.vkey())
    port = free_port()
    processes.append(start_witness(config, port))
    key = load_cosigner_key(config.parent / "keys" / "witness.pub")
    directory = tmp_path / "audit"
    log = AuditLog.open(directory, signer=signer, origin=ORIGIN, durability="sync")
    witnesses = Witnesses([WitnessEndpoint.of(f"http://127.0.0.1:{port}", key)], retry_s=0.05)
    witnesses.start(directory)
    for i in range(12):
        log.write(make_record(i)).result()  # type: ignore[union-attr]
        if i in (5, 11):
            witnesses.submit(log.checkpoint())  # type: ignore[arg-type]
    assert witnesses.wait(12, timeout=30)
    witnesses.close()
    log.close()
    url = f"http://127.0.0.1:{port}/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint"
    args = ["verify", str(directory), "--public-key", str(public), "--origin", ORIGIN]
    assert main([*args, "--checkpoint", url, "--witness-key", str(key.vkey())]) == 0
    # the newest six records and every trace of them are removed
    seg = list_segments(directory)[0]
    seg.path.write_bytes(b"".join(seg.path.read_bytes().splitlines(keepends=True)[:6]))
    notes = [n for n in read_notes(seg.checkpoints) if isinstance(n, SignedCheckpoint)]
    seg.checkpoints.write_text("".join(n.note() + "\n" for n in notes if n.checkpoint.size <= 6))
    (directory / COSIGNED_FILE).unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert main([*args, "--checkpoint", url]) == 1
    assert "rolled-back" in capsys.readouterr().out


def test_a_reopened_log_hands_its_newest_checkpoint_to_the_witnesses(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    signer = Signer.generate("log-key")
    config = write_config(tmp_path / "w1", "w1.example", ORIGIN, signer.public_key.vkey())
    port = free_port()
    key = load_cosigner_key(config.parent / "keys" / "witness.pub")
    directory = tmp_path / "audit"
    log = AuditLog.open(directory, signer=signer, origin=ORIGIN)
    for i in range(7):
        log.write(make_record(i)).result()  # type: ignore[union-attr]
    log.close()  # signed at close, never sent: no witness configured then
    processes.append(start_witness(config, port))
    witnesses = Witnesses([WitnessEndpoint.of(f"http://127.0.0.1:{port}", key)], retry_s=0.05)
    log = AuditLog.open(directory, signer=signer, origin=ORIGIN, witnesses=witnesses)
    try:
        assert witnesses.wait(7, timeout=30)
    finally:
        log.close()
    assert witnesses.status()[f"http://127.0.0.1:{port}"]["cosigned_size"] == 7


def test_the_final_checkpoint_is_cosigned_at_close_while_another_witness_is_down(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    signer = Signer.generate("log-key")
    configs = [
        write_config(tmp_path / f"w{i}", f"w{i}.example", ORIGIN, signer.public_key.vkey())
        for i in (1, 2)
    ]
    ports = [free_port(), free_port()]
    keys = [load_cosigner_key(c.parent / "keys" / "witness.pub") for c in configs]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    witnesses = Witnesses(
        [WitnessEndpoint.of(u, k) for u, k in zip(urls, keys, strict=True)],
        quorum=1,
        retry_s=600.0,  # after a failed exchange a witness is tried again only at close
        max_retry_s=600.0,
        close_wait_s=30.0,  # a bound, never reached: the witness that is up answers at once
    )
    directory = tmp_path / "audit"
    first = AuditLog.open(directory, signer=signer, origin=ORIGIN)
    for i in range(2):
        first.write(make_record(i)).result()  # type: ignore[union-attr]
    first.close()
    log = AuditLog.open(
        directory,
        signer=signer,
        origin=ORIGIN,
        checkpoint_every=1000,
        checkpoint_interval_ms=3_600_000,
        witnesses=witnesses,
    )
    # both are down when the log opens and hands them the checkpoint of size 2: each failed
    # once and waits out its backoff
    assert "unreachable" in _first_error(witnesses, urls[0])
    assert "unreachable" in _first_error(witnesses, urls[1])
    processes.append(start_witness(configs[1], ports[1]))  # the first one stays down
    for i in range(2, 5):
        log.write(make_record(i)).result()  # type: ignore[union-attr]
    log.close()  # signs the checkpoint of size 5, and waits for the witnesses' answers
    final = [n for n in read_cosigned(directory) if n.checkpoint.size == 5]
    assert [keys[1].cosigned(n) is not None for n in final] == [True]
    assert [keys[0].cosigned(n) is not None for n in final] == [False]
    status = witnesses.status()
    assert status[urls[1]]["cosigned_size"] == 5
    assert "unreachable" in str(status[urls[0]]["error"])


def test_a_negative_wait_at_close_is_refused() -> None:
    key = Cosigner.generate("w1.example").public_key
    with pytest.raises(ConfigurationError, match="close_wait_s >= 0"):
        Witnesses([WitnessEndpoint.of("http://127.0.0.1:9", key)], close_wait_s=-1)
