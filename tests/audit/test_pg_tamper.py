"""The attacks of an insider with SQL access to the log's database but not the signing key:
each one, as it was done, fails to produce an OK ``kzai-guard verify postgresql://...`` or an
open that adopts it, before and after a restart. A crash's tail is still adopted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.cli.main import main
from kzai_guard.errors import AuditLogError, AuditUnavailable

from ..postgres import fresh_database
from .conftest import make_record
from .pg_tampering import (
    chained,
    checkpoint_sizes,
    delete_checkpoints,
    edit,
    pg_lines,
    rechain,
    store_lines,
    writing_mark,
)

REFUSED = "holds what no writer of it can vouch for"
ORIGIN = "audit.example.kz/credit-pg-tamper"


@pytest.fixture
def url() -> Iterator[str]:
    """A fresh database for one log."""
    with fresh_database() as made:
        yield made


def _log(url: str, signer: Signer, n: int, **options: object) -> list[bytes]:
    """Write ``n`` records (a checkpoint every 5), close; the lines as written."""
    log = _opened(url, signer, **options)
    for i in range(n):
        log.write(make_record(i))
    log.close()
    return pg_lines(url)


def _opened(url: str, signer: Signer, **options: object) -> AuditLog:
    options.setdefault("checkpoint_every", 5)
    options.setdefault("origin", ORIGIN)
    options.setdefault("seal_personal_fields", False)
    return AuditLog.open(url, signer=signer, durability="sync", **options)  # type: ignore[arg-type]


def _open(url: str, signer: Signer, **options: object) -> None:
    _opened(url, signer, **options).close()


def _verify(url: str, signer: Signer, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["verify", url, "--public-key", signer.public_key.vkey(), "--origin", ORIGIN])
    out = capsys.readouterr()
    return code, out.out + out.err


def _repair(url: str, signer: Signer, action: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["repair", url, action, "--public-key", signer.public_key.vkey()])
    out = capsys.readouterr().out
    return f"{code}\n{out}"


def test_a_sound_log_verifies_reopens_and_leaves_no_mark(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    _log(url, signer, 12)
    assert writing_mark(url) is None  # a clean close of the last writer deletes it
    _open(url, signer)
    code, out = _verify(url, signer, capsys)
    assert (code, "OK: 12 records" in out) == (0, True)


@pytest.mark.parametrize("keep_checkpoints", [False, True])
def test_a_rewritten_row_with_its_chain_rebuilt_is_refused(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str], keep_checkpoints: bool
) -> None:
    lines = _log(url, signer, 12)
    assert make_record(6).verdict == "block"
    edit(lines, 6, verdict="allow")
    rechain(lines, 6)
    store_lines(url, lines)
    if not keep_checkpoints:
        delete_checkpoints(url)
    assert _verify(url, signer, capsys)[0] == 1
    with pytest.raises(AuditLogError, match=REFUSED):
        _open(url, signer)
    # nothing was signed over the rewrite, and nothing dropped
    assert _verify(url, signer, capsys)[0] == 1
    assert pg_lines(url) == lines
    assert checkpoint_sizes(url) == ([5, 10, 12] if keep_checkpoints else [])
    with pytest.raises(AuditLogError, match=REFUSED):
        _open(url, signer)


def test_a_forged_record_appended_while_stopped_is_refused(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _log(url, signer, 7)
    forged = {"id": "rev-forged", "kind": "review.completed", "time": 1, "verdict": "allow"}
    store_lines(url, [*lines, chained(lines, forged)])
    code, out = _verify(url, signer, capsys)
    assert (code, "unsigned-tail" in out) == (1, True)
    with pytest.raises(AuditLogError, match=r"records 7\.\.7 follow the newest checkpoint"):
        _open(url, signer)
    code, out = _verify(url, signer, capsys)
    assert (code, "unsigned-tail" in out) == (1, True)
    assert checkpoint_sizes(url) == [5, 7]


def test_the_newest_entries_removed_with_their_checkpoints_left_are_refused(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _log(url, signer, 12)
    store_lines(url, lines[:8])
    code, out = _verify(url, signer, capsys)
    assert (code, "a checkpoint covers 12 records" in out) == (1, True)
    with pytest.raises(AuditLogError, match="covers 12 records but only 8 are left"):
        _open(url, signer)
    assert _verify(url, signer, capsys)[0] == 1
    assert checkpoint_sizes(url) == [5, 10, 12]


def test_the_oldest_entries_removed_are_refused(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    _log(url, signer, 12)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM kzg_log_entries WHERE seq < 4")
    code, out = _verify(url, signer, capsys)
    assert (code, "no line for seq 0" in out) == (2, True)
    with pytest.raises(AuditLogError, match=r"holds seq 4\.\.11: records were removed"):
        _open(url, signer)
    assert _verify(url, signer, capsys)[0] == 2


def test_a_forged_head_checkpoint_is_refused(url: str, signer: Signer) -> None:
    _log(url, signer, 6)
    stranger = Signer.generate(signer.name)
    with psycopg.connect(url) as conn:
        note = conn.execute("SELECT checkpoint FROM kzg_log_head").fetchone()[0]
        body = note.split("\n\n")[0]
        forged = SignedCheckpoint.parse(note).checkpoint.sign([stranger]).note()
        assert forged.startswith(body)
        conn.execute("UPDATE kzg_log_head SET checkpoint = %s", (forged,))
    with pytest.raises(AuditLogError, match="the head row's checkpoint"):
        _open(url, signer)


def test_a_crash_tail_is_adopted(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    _log(url, signer, 3)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a writer killed before its next checkpoint
        try:
            log = _opened(url, signer, checkpoint_every=100, checkpoint_interval_ms=3_600_000)
            for i in range(3, 10):
                log.write(make_record(i)).result()  # type: ignore[union-attr]
            os.write(write_fd, b"written")
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(write_fd)
    assert os.read(read_fd, 16) == b"written"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read_fd)
    assert writing_mark(url) is not None
    code, out = _verify(url, signer, capsys)
    assert (code, "unsigned-tail" in out) == (1, True)
    with pytest.raises(AuditLogError, match="more than the 5 a writer appends"):
        _open(url, signer, checkpoint_every=5)
    _open(url, signer, checkpoint_every=100)
    code, out = _verify(url, signer, capsys)
    assert (code, "OK: 10 records" in out) == (0, True)
    assert writing_mark(url) is None


def test_the_writing_mark_stays_while_any_writer_has_the_log_open(url: str, signer: Signer) -> None:
    first = _opened(url, signer)
    second = _opened(url, signer)
    first.write(make_record(0)).result()  # type: ignore[union-attr]
    assert writing_mark(url) is not None
    first.close()
    assert writing_mark(url) is not None  # the second writer may still leave a tail
    second.close()
    assert writing_mark(url) is None


def test_a_running_writer_stops_when_checkpoints_are_deleted_under_it(
    url: str, signer: Signer
) -> None:
    log = _opened(url, signer)
    try:
        for i in range(6):
            log.write(make_record(i)).result()  # type: ignore[union-attr]
        delete_checkpoints(url)
        future = log.write(make_record(6))
        with pytest.raises(AuditUnavailable, match="checkpoints were removed"):
            future.result()  # type: ignore[union-attr]
        assert not log.healthy
    finally:
        log.close()


def test_repair_shows_what_differs(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _log(url, signer, 12)
    assert make_record(9).verdict == "block"
    edit(lines, 9, verdict="allow")
    rechain(lines, 9)
    store_lines(url, lines)
    shown = _repair(url, signer, "--show", capsys)
    assert shown.startswith("1\n")
    assert "12 chained from seq 0, 5 confirmed by a trusted checkpoint" in shown
    assert "records up to 12 do not match the signed checkpoint" in shown
    assert "records 5..11 aside" in shown
    assert "checkpoint of size 10 aside" in shown


def test_quarantine_moves_the_unexplained_rows_aside_and_the_log_opens(
    url: str, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _log(url, signer, 12)
    assert make_record(9).verdict == "block"
    edit(lines, 9, verdict="allow")
    rechain(lines, 9)
    store_lines(url, lines)
    moved = _repair(url, signer, "--quarantine", capsys)
    assert moved.startswith("0\n") and "the log now ends at seq 4" in moved
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT kind, seq, data FROM kzg_log_quarantine WHERE kind = 'entry' ORDER BY seq"
        ).fetchall()
        sizes = conn.execute(
            "SELECT seq FROM kzg_log_quarantine WHERE kind = 'checkpoint'"
        ).fetchall()
    assert [(r[1], bytes(r[2])) for r in rows] == [(i, lines[i]) for i in range(5, 12)]
    assert sorted(sizes) == [(10,), (12,)]
    assert pg_lines(url) == lines[:5]
    code, out = _verify(url, signer, capsys)
    assert (code, "OK: 5 records" in out) == (0, True)
    _open(url, signer)
    code, out = _verify(url, signer, capsys)
    assert (code, "OK: 5 records" in out) == (0, True)


def test_a_writer_goes_on_when_another_signs_with_a_rotated_key(url: str, signer: Signer) -> None:
    first = _opened(url, signer)
    second = _opened(url, signer)
    try:
        first.write(make_record(0)).result()  # type: ignore[union-attr]
        first.rotate_key(Signer.generate("next-key"))
        for i in range(1, 6):
            first.write(make_record(i)).result()  # type: ignore[union-attr]
        newest = first.checkpoint()
        assert newest is not None and newest.signatures[0][0] == "next-key"
        second.write(make_record(6)).result()  # type: ignore[union-attr]
        assert second.healthy
    finally:
        first.close()
        second.close()
