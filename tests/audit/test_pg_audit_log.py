"""``AuditLog.open("postgresql://...")`` and ``Guard(audit="postgresql://...")``: one log for
every process and host, erasure from any of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

import kzai_guard as kg
from kzai_guard.audit.keys import Signer, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.pg_copy import copy_log
from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.segments import parse_line
from kzai_guard.audit.shredding import ERASED
from kzai_guard.errors import AuditUnavailable
from tests.samples import EXPLANATION

from .conftest import make_record
from .pg import private_database
from .tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty database for one test."""
    yield from private_database()


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Path, Signer]:
    """A checkpoint key on disk: (private key file, public key file, signer)."""
    return write_keypair(tmp_path / "keys", "pg-log")


ORIGIN = "pg-writers.example.kz/audit"
_CLI = (sys.executable, "-m", "kzai_guard.cli")


def _ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT seq, line FROM kzg_log_entries ORDER BY seq").fetchall()
    assert [seq for seq, _ in rows] == list(range(len(rows)))
    return [parse_line(bytes(line))["rec"]["id"] for _, line in rows]


def test_a_log_in_postgresql_needs_a_signer(pg_url: str) -> None:
    with pytest.raises(kg.ConfigurationError, match="signer="):
        AuditLog.open(pg_url)


_PROCESS = """
import sys
from pathlib import Path
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from tests.audit.conftest import make_record

url, key, name, durability = sys.argv[1:5]
log = AuditLog.open(url, signer=Signer.from_file(Path(key)), durability=durability,
                    checkpoint_every=64, origin="pg-writers.example.kz/audit")
for i in range(150):
    record = make_record(i, id=f"{name}-{i}", subject=f"p:{name}-{i % 3}")
    future = log.write(record)
    if future is not None:
        future.result(30)
    if durability == "sync":
        print(record.id, flush=True)
log.close()
if durability == "async":
    print(*(f"{name}-{i}" for i in range(150)), flush=True)
"""


def test_processes_opening_the_url_write_one_log_that_verifies(
    pg_url: str, key: tuple[Path, Path, Signer]
) -> None:
    private, public, _ = key
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shapes = [("a", "sync"), ("b", "sync"), ("c", "async")]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_PROCESS), pg_url, str(private), n, d],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, d in shapes
    ]
    acknowledged: list[str] = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        acknowledged += out.split()
    assert len(acknowledged) == 450
    assert Counter(_ids(pg_url)) == Counter(acknowledged)
    result = subprocess.run(
        [*_CLI, "verify", pg_url, "--public-key", str(public), "--origin", ORIGIN],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 450 records" in result.stdout


_ERASER = """
import sys
from pathlib import Path
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog

log = AuditLog.open(sys.argv[1], signer=Signer.from_file(Path(sys.argv[2])))
log.erase_subject(sys.argv[3])
log.close()
"""

POLICY = kg.DecisionPolicy(
    name="loan",
    purpose="credit",
    significance="legal-effect",
    autonomy="high",
    risk="high",
    model=kg.ModelInfo(name="m", version="1"),
)


def test_a_guard_on_the_url_logs_decisions_and_another_process_erases_a_subject(
    pg_url: str, key: tuple[Path, Path, Signer], tmp_path: Path
) -> None:
    private, public, signer = key
    guard = kg.Guard(
        [POLICY],
        store="memory://",
        audit=pg_url,
        audit_signer=signer,
        durability="sync",
        subject=kg.from_path_param("applicant_id"),
        pseudonym_key=b"k" * 32,
        contact="c",
    )

    @guard.decision("loan")
    def run() -> str:
        kg.explain(EXPLANATION)
        return "done"

    for subject in ("A-1", "B-2"):
        guard.consents.grant(subject, "credit", "v1")
        with kg.decision_context(subject):
            assert run() == "done"
    erased = guard.auditor.pseudonym("A-1")
    kept = guard.auditor.pseudonym("B-2")
    guard.close()

    eraser = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_ERASER), pg_url, str(private), erased],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert eraser.returncode == 0, eraser.stderr

    copy_log(pg_url, tmp_path / "copy")
    keys = PostgresSubjectKeys(pg_url)
    entries = list(read_verified(tmp_path / "copy", public_keys=[public], subject_keys=keys))
    keys.close()
    subjects = Counter(e.record.subject for e in entries)
    assert subjects == {ERASED: 2, kept: 2}


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a state, not a duration: the bound only stops a hung test)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting until {what}")
        time.sleep(0.02)


def test_a_cut_connection_refuses_records_keeps_those_accepted_and_recovers_by_itself(
    pg_url: str, key: tuple[Path, Path, Signer]
) -> None:
    _, _, signer = key
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        url = f"postgresql://127.0.0.1:{proxy.port}/{pg_url.rsplit('/', 1)[1]}"
        log = AuditLog.open(url, signer=signer, durability="async", checkpoint_interval_ms=600_000)
        accepted = [f"before-{i}" for i in range(50)]
        for record_id in accepted:
            log.write(make_record(0, id=record_id))
        log.flush(30)
        proxy.block()
        refused = 0
        for i in range(100_000):
            try:
                log.write(make_record(i, id=f"during-{i}"))
            except AuditUnavailable:
                refused += 1
                break
            accepted.append(f"during-{i}")
            time.sleep(0.001)
        assert refused == 1 and not log.healthy
        proxy.unblock()
        _until(lambda: log.healthy, "the log is writable again")
        for i in range(50):
            log.write(make_record(i, id=f"after-{i}"))
            accepted.append(f"after-{i}")
        log.close()
    assert Counter(_ids(pg_url)) == Counter(accepted)
    assert len(accepted) > 100
