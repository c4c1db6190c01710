"""A log with two witnesses in their own processes, one of them offline for a while."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzai_guard.audit.cosignature import load_cosigner_key
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.witnesses import WitnessEndpoint, Witnesses, cosigned_note, read_cosigned
from tests.audit.conftest import make_record

from .helpers import free_port, start_witness, write_config

ORIGIN = "audit.example.kz/credit"


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
    processes.append(start_witness(configs[0], ports[0]))
    keys = [load_cosigner_key(c.parent / "keys" / "witness.pub") for c in configs]
    witnesses = Witnesses(
        [WitnessEndpoint.of(f"http://127.0.0.1:{p}", k) for p, k in zip(ports, keys, strict=True)],
        quorum=2,
        timeout_s=2.0,
        retry_s=0.05,
        max_retry_s=0.2,
    )
    directory = tmp_path / "audit"
    log = AuditLog.open(directory, signer=signer, origin=ORIGIN, durability="sync")
    witnesses.start(directory)
    try:
        for batch in range(3):
            for i in range(10):
                log.write(make_record(batch * 10 + i)).result()  # type: ignore[union-attr]
            note = log.checkpoint()
            assert note is not None
            witnesses.submit(note)
        assert log.size == 30
        assert witnesses.wait(30, timeout=30, count=1)
        status = witnesses.status()
        assert status[f"http://127.0.0.1:{ports[0]}"]["cosigned_size"] == 30
        assert status[f"http://127.0.0.1:{ports[1]}"]["cosigned_size"] == -1
        assert "unreachable" in str(status[f"http://127.0.0.1:{ports[1]}"]["error"])

        processes.append(start_witness(configs[1], ports[1]))
        assert witnesses.wait(30, timeout=30)
        kept = read_cosigned(directory)
        full = cosigned_note(note, kept)
        assert witnesses.policy.satisfied([full])
        assert {k.cosigned(full) is not None for k in keys} == {True}
    finally:
        witnesses.close()
        log.close()
