"""Crash safety: writers killed with SIGKILL at random moments lose no acknowledged record.

Each round forks a real writer process (forking keeps the campaign fast: the child starts with
everything imported), lets it run for a random few milliseconds, sometimes while it is still
repairing the previous crash, and kills it with SIGKILL. Sync-mode writers report each record
only after its future resolved. Every few rounds, and at the end, the log is reopened (which
repairs a torn tail), must contain every acknowledged record in order with nothing duplicated,
and must pass the full verifier.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from pathlib import Path

import pytest

from kzai_guard.audit.keys import Keyring, Signer, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.verify import verify_log

from .conftest import make_record

ROUNDS = 200


def _writer(directory: Path, key: Path, round_no: int, durability: str, ack_fd: int) -> None:
    log = AuditLog.open(
        directory,
        signer=Signer.from_file(key),
        durability=durability,  # type: ignore[arg-type]
        checkpoint_every=5,
        checkpoint_interval_ms=3,
        segment_max_bytes=6000,
    )
    n = 0
    while True:
        record = make_record(n, id=f"r{round_no}-{n}")
        future = log.write(record)
        if future is not None:
            future.result()
            os.write(ack_fd, record.id.encode() + b"\n")
        else:
            time.sleep(0.0002)
        n += 1


def _run_round(directory: Path, key: Path, round_no: int, rng: random.Random) -> list[str]:
    durability = "sync" if rng.random() < 0.75 else "async"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer process
        code = 0
        try:
            os.close(read_fd)
            _writer(directory, key, round_no, durability, write_fd)
        except BaseException:
            (directory.parent / f"writer-{round_no}.err").write_text(traceback.format_exc())
            code = 3
        finally:
            os._exit(code)
    os.close(write_fd)
    time.sleep(rng.uniform(0.0, 0.15))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    acked = b""
    while chunk := os.read(read_fd, 65536):
        acked += chunk
    os.close(read_fd)
    error = directory.parent / f"writer-{round_no}.err"
    assert not error.exists(), error.read_text()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return [line for line in acked.decode().split("\n") if line]


def _check(directory: Path, signer: Signer, acked: list[str]) -> None:
    AuditLog.open(directory, signer=signer).close()
    ids = [e.record.id for e in read_verified(directory, public_keys=[signer.public_key])]
    assert len(ids) == len(set(ids))
    position = {record_id: i for i, record_id in enumerate(ids)}
    missing = [a for a in acked if a not in position]
    assert missing == []
    assert [position[a] for a in acked] == sorted(position[a] for a in acked)
    report = verify_log(directory, Keyring([signer.public_key]))
    assert report.problem is None
    assert report.records == len(ids)


@pytest.mark.slow
def test_sigkill_campaign_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    rng = random.Random(20260101)
    key, _, signer = write_keypair(tmp_path / "keys", "crash-key")
    directory = tmp_path / "audit"
    acked: list[str] = []
    for round_no in range(ROUNDS):
        acked.extend(_run_round(directory, key, round_no, rng))
        if round_no % 50 == 49:
            _check(directory, signer, acked)
    _check(directory, signer, acked)
    assert len(acked) > ROUNDS
