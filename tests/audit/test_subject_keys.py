"""The SQLite subject-key store: batch look-ups, erasure that leaves no copy in the WAL,
reserved keys, and the log's use of it: new keys committed durably before their lines."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson
import pytest

from kzai_guard.audit import subject_keys
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.lines import LineEncoder
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.segments import list_segments
from kzai_guard.audit.shredding import ERASED, Sealer, SqliteSubjectKeys, subject_ref

from .conftest import make_record


def test_prefetch_finds_stored_keys_and_lets_new_ones_be_made(tmp_path: Path) -> None:
    keys = SqliteSubjectKeys(tmp_path / "keys.sqlite3")
    stored = keys.key_for("sk:a")
    keys.commit()
    keys.close()
    reopened = SqliteSubjectKeys(tmp_path / "keys.sqlite3")
    reopened.prefetch(["sk:a", "sk:b"])
    assert reopened.key_for("sk:a") == stored
    assert reopened.key_for("sk:b", create=False) is None
    made = reopened.key_for("sk:b")
    assert made is not None and len(made) == 32 and made != stored
    reopened.commit()
    assert reopened.key_for("sk:b") == made
    reopened.close()


def test_a_key_committed_first_by_another_store_wins_and_commit_says_so(tmp_path: Path) -> None:
    # two writers seal a new subject's records at once, neither holding the log
    first = SqliteSubjectKeys(tmp_path / "keys.sqlite3", reserve_keys=False)
    second = SqliteSubjectKeys(tmp_path / "keys.sqlite3", reserve_keys=False)
    second.prefetch(["sk:new", "sk:own"])
    first.prefetch(["sk:new"])
    mine, theirs = first.key_for("sk:new"), second.key_for("sk:new")
    own = second.key_for("sk:own")
    assert mine != theirs
    assert first.commit() is False
    assert second.commit() is True
    assert second.key_for("sk:new") == mine
    assert second.key_for("sk:own") == own
    assert second.commit() is False
    reader = SqliteSubjectKeys(tmp_path / "keys.sqlite3")
    assert reader.key_for("sk:new", create=False) == mine
    assert reader.key_for("sk:own", create=False) == own
    for store in (first, second, reader):
        store.close()


def test_an_erased_key_is_gone_after_prefetch_and_from_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path)
    key = keys.key_for("sk:a")
    assert key is not None and len(key) == 32
    keys.commit()
    keys.erase("sk:a")
    keys.prefetch(["sk:a"])
    assert keys.key_for("sk:a", create=False) is None
    wal = Path(str(path) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert key not in path.read_bytes()
    keys.close()


def _lines(directory: Path) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for seg in list_segments(directory)
        for line in seg.path.read_bytes().split(b"\n")[:-1]
    ]


def _undo_assignments(store: Path, pairs: list[tuple[str, int]]) -> None:
    """Put the database back as a crash before the assignments reached the disk leaves it."""
    db = sqlite3.connect(store, isolation_level=None)
    db.execute("BEGIN")
    for ref, number in pairs:
        row = db.execute("SELECT key FROM subject_key WHERE ref = ?", (ref,)).fetchone()
        if row is None:
            # the keeper had not committed it yet: the key is still reserved
            assert db.execute("SELECT 1 FROM reserved_key WHERE number = ?", (number,)).fetchone()
            continue
        db.execute("DELETE FROM subject_key WHERE ref = ?", (ref,))
        db.execute("INSERT INTO reserved_key (number, key) VALUES (?, ?)", (number, row[0]))
    db.execute("COMMIT")
    db.close()


def _wait_until(condition: Callable[[], object], failure: str) -> None:
    """Poll ``condition`` until it holds; fail with ``failure`` after ten seconds."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def _crash_after(directory: Path, signer: Signer, work: Callable[[AuditLog], None]) -> None:
    """Run ``work`` on a sync log in a child process, then kill it with SIGKILL."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            log = AuditLog.open(directory, signer=signer, durability="sync")
            work(log)
            os.write(ready_w, b"x")
            time.sleep(60)
        finally:
            os._exit(3)
    assert os.read(ready_r, 1) == b"x"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(ready_r)
    os.close(ready_w)


def _write_five(log: AuditLog) -> None:
    for i in range(5):
        future = log.write(make_record(i, subject=f"p:new-{i}"))
        assert isinstance(future, Future)
        future.result()


def test_every_record_a_sync_log_acknowledged_reads_back_after_sigkill(tmp_path: Path) -> None:
    directory, signer = tmp_path / "audit", Signer.generate("k")
    _crash_after(directory, signer, _write_five)
    # the log's store commits new keys durably before the lines: no line names a key number
    assert all("key" not in line["sealed"] for line in _lines(directory))  # type: ignore[operator]
    AuditLog.open(directory, signer=signer).close()
    subjects = [e.record.subject for e in read_verified(directory)]
    assert subjects == [f"p:new-{i}" for i in range(5)]


def test_records_sealed_under_a_key_that_lost_a_race_are_sealed_again(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    log = AuditLog.open(directory, signer=Signer.generate("k"), durability="sync")
    store = log._subject_keys
    assert isinstance(store, SqliteSubjectKeys)
    other = SqliteSubjectKeys(directory / "subject-keys.sqlite3", reserve_keys=False)
    real_commit = store.commit
    committed_first: list[bytes | None] = []

    def another_process_commits_first() -> bool:
        # another writer of the log seals the same new subject and commits its key first
        other.prefetch([subject_ref("p:raced")])
        committed_first.append(other.key_for(subject_ref("p:raced")))
        other.commit()
        store.commit = real_commit  # type: ignore[method-assign]
        return real_commit()

    store.commit = another_process_commits_first  # type: ignore[method-assign]
    log.write(make_record(0, subject="p:raced")).result()  # type: ignore[union-attr]
    log.close()
    winner = other.key_for(subject_ref("p:raced"), create=False)
    other.close()
    assert committed_first == [winner]
    assert len(winner or b"") == 32
    assert [e.record.subject for e in read_verified(directory)] == ["p:raced"]


def test_a_batch_sealed_before_another_writer_erased_its_key_is_sealed_again(
    tmp_path: Path,
) -> None:
    directory, signer = tmp_path / "audit", Signer.generate("k")
    writer = AuditLog.open(directory, signer=signer, durability="sync")
    eraser = AuditLog.open(directory, signer=signer, durability="sync")
    writer.write(make_record(0, subject="p:gone")).result()  # type: ignore[union-attr]
    real_sequence = writer._storage.sequence

    def erased_meanwhile() -> Any:
        # the next batch is sealed (under the cached key); the key is erased before the hold
        writer._storage.sequence = real_sequence  # type: ignore[method-assign]
        eraser.erase_subject("p:gone")
        return real_sequence()

    writer._storage.sequence = erased_meanwhile  # type: ignore[method-assign]
    writer.write(make_record(1, subject="p:gone")).result()  # type: ignore[union-attr]
    writer.close()
    eraser.close()
    assert [e.record.subject for e in read_verified(directory)] == [ERASED, "p:gone"]


def test_an_erased_subject_stays_erased_after_a_crash(tmp_path: Path) -> None:
    directory, signer = tmp_path / "audit", Signer.generate("k")

    def write_and_erase(log: AuditLog) -> None:
        _write_five(log)
        log.erase_subject("p:new-2")

    _crash_after(directory, signer, write_and_erase)
    AuditLog.open(directory, signer=signer).close()
    subjects = [e.record.subject for e in read_verified(directory)]
    assert subjects == ["p:new-0", "p:new-1", ERASED, "p:new-3", "p:new-4"]


def test_a_sync_group_commit_with_a_new_subject_commits_its_key_durably_before_the_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog.open(tmp_path / "audit", signer=Signer.generate("k"), durability="sync")
    log.write(make_record(0, subject="p:warm")).result()  # type: ignore[union-attr]
    store = log._subject_keys
    assert isinstance(store, SqliteSubjectKeys)
    events: list[str] = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(
        os, "fdatasync", lambda fd: (events.append("fdatasync"), real_fdatasync(fd))[1]
    )
    store._wdb.set_trace_callback(events.append)
    log.write(make_record(1, subject="p:a-new-subject")).result()  # type: ignore[union-attr]
    monkeypatch.undo()
    store._wdb.set_trace_callback(None)
    # one durable commit of the key (synchronous=FULL), then the segment's one fdatasync
    assert events.index("PRAGMA synchronous=FULL") < events.index("COMMIT")
    assert events.index("COMMIT") < events.index("fdatasync")
    assert events.count("fdatasync") == 1
    ref = subject_ref("p:a-new-subject")
    watcher = sqlite3.connect(store.path)
    assert watcher.execute("SELECT 1 FROM subject_key WHERE ref = ?", (ref,)).fetchone()
    watcher.close()
    log.close()


def test_reserved_key_numbers_are_never_handed_out_twice(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path)
    keys.reserve(3)
    numbers = []
    for ref in ("sk:a", "sk:b", "sk:c"):
        keys.key_for(ref)
        numbers.append(keys.key_number(ref))
    keys.commit()
    keys.close()
    reopened = SqliteSubjectKeys(path)
    reopened.reserve(3)
    reopened.key_for("sk:d")
    assert reopened.key_number("sk:d") not in numbers
    reopened.close()


def test_the_keeper_refills_the_reserve_and_commits_assignments_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subject_keys, "_RESERVE_LOW", 3)
    monkeypatch.setattr(subject_keys, "_RESERVE_CHUNK", 5)
    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path)
    keys.reserve(4)
    taken = {ref: keys.key_for(ref) for ref in ("sk:a", "sk:b")}
    assert (keys.key_number("sk:a"), keys.key_number("sk:b")) == (1, 2)
    keys.commit()  # reserved keys only: nothing for the writer to commit
    watcher = sqlite3.connect(path)
    _wait_until(
        lambda: watcher.execute("SELECT count(*) FROM reserved_key").fetchone()[0] == 7,
        "the keeper never refilled the reserve",
    )
    stored = dict(watcher.execute("SELECT ref, key FROM subject_key").fetchall())
    watcher.close()
    assert stored == taken
    # the refill's fsync made the assignments committed before it durable
    assert keys.key_number("sk:a") is None and keys.key_number("sk:b") is None
    keys.close()


def test_a_key_erased_before_the_keeper_commits_it_is_gone_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subject_keys, "_KEEP_INTERVAL_S", 60.0)
    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path)
    keys.reserve(3)
    keys.key_for("sk:gone")
    number = keys.key_number("sk:gone")
    assert number == 1  # the first key of the reserve
    keys.erase("sk:gone")
    assert keys.key_for("sk:gone", create=False) is None
    keys.close()
    reopened = SqliteSubjectKeys(path)
    assert reopened.key_for("sk:gone", create=False) is None
    assert reopened.reserved_key(number) is None
    reopened.close()


def test_an_empty_reserve_makes_a_fresh_key_committed_durably_before_its_records(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path)
    key = keys.key_for("sk:fresh")
    assert keys.key_number("sk:fresh") is None
    keys.commit()
    watcher = sqlite3.connect(path)
    assert watcher.execute("SELECT key FROM subject_key WHERE ref = 'sk:fresh'").fetchone() == (
        key,
    )
    watcher.close()
    keys.close()


def test_an_async_log_commits_fresh_keys_before_its_lines_and_numbers_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "audit"
    log = AuditLog.open(directory, signer=Signer.generate("k"))
    store = log._subject_keys
    assert isinstance(store, SqliteSubjectKeys)
    statements: list[str] = []
    store._wdb.set_trace_callback(statements.append)
    written: list[bool] = []
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        # when the lines reach the segment, the keys sealing them are committed already
        if fd == log._storage._fd:
            written.append("COMMIT" in statements)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    for i in range(3):
        log.write(make_record(i, subject=f"p:async-{i}"))
    log.flush()
    monkeypatch.undo()
    store._wdb.set_trace_callback(None)
    log.close()
    assert written and all(written)
    assert "PRAGMA synchronous=FULL" in statements[: statements.index("COMMIT")]
    assert all("key" not in line["sealed"] for line in _lines(directory))  # type: ignore[operator]
    subjects = [e.record.subject for e in read_verified(directory)]
    assert subjects == [f"p:async-{i}" for i in range(3)]


def test_keys_for_a_batch_are_what_key_for_gives_each_ref(tmp_path: Path) -> None:
    keys = SqliteSubjectKeys(tmp_path / "keys.sqlite3")
    keys.reserve(2)
    stored = keys.key_for("sk:stored")
    keys.sync()
    pending = keys.key_for("sk:pending")
    refs = ["sk:stored", "sk:pending", "sk:new", "sk:stored"]
    batch = keys.keys_for(refs)
    assert batch[:2] == [stored, pending] and batch[3] == stored
    assert batch[2] == keys.key_for("sk:new", create=False)
    # "sk:stored" took reserved key 1, durable since sync(); "sk:new" found the reserve empty
    assert keys.key_numbers(refs) == [keys.key_number(r) for r in refs] == [None, 2, None, None]
    keys.close()


def test_a_batchs_record_references_are_found_by_another_connection_until_their_key_is_erased(
    tmp_path: Path,
) -> None:
    keys = SqliteSubjectKeys(tmp_path / "keys.sqlite3", reserve_keys=False)
    records = [make_record(i, subject=f"p:{i % 2}") for i in range(6)]
    bodies = LineEncoder(Sealer(keys)).bodies(records)
    keys.commit()  # as the log does before it writes the lines
    refs = [re.search(rb'"ref":"(rr:[0-9a-f]{32})"', body)[1].decode() for body in bodies]  # type: ignore[index]
    reader = SqliteSubjectKeys(tmp_path / "keys.sqlite3")
    owners = [keys.key_for(subject_ref(f"p:{i % 2}"), create=False) for i in range(6)]
    assert [reader.record_key(ref) for ref in refs] == owners

    keys.erase(subject_ref("p:0"))

    assert [reader.record_key(ref) is None for ref in refs] == [i % 2 == 0 for i in range(6)]
    db = sqlite3.connect(tmp_path / "keys.sqlite3")
    assert db.execute("SELECT count(*) FROM record_ref").fetchone()[0] == 3
    db.close()
    reader.close()
    keys.close()


def test_a_batch_sealed_before_another_process_erased_its_owner_leaves_no_entry_for_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path, reserve_keys=False)
    encoder = LineEncoder(Sealer(keys))
    encoder.bodies([make_record(0, subject="p:gone"), make_record(1, subject="p:kept")])
    keys.commit()
    encoder.bodies([make_record(2, subject="p:gone"), make_record(3, subject="p:kept")])
    eraser = SqliteSubjectKeys(path)
    eraser.erase(subject_ref("p:gone"))  # between the sealing and the commit of the batch
    eraser.close()

    keys.commit()

    db = sqlite3.connect(path)
    owners = db.execute("SELECT owner, count(*) FROM record_ref GROUP BY owner").fetchall()
    db.close()
    assert owners == [(subject_ref("p:kept"), 2)]
    keys.close()
    for file in path.parent.glob("keys.sqlite3*"):
        assert subject_ref("p:gone").encode() not in file.read_bytes()


def test_record_references_remembered_during_a_commit_wait_for_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kzai_guard.audit import subject_keys

    path = tmp_path / "keys.sqlite3"
    keys = SqliteSubjectKeys(path, reserve_keys=False)
    owner = subject_ref("p:0")
    keys.key_for(owner)
    keys.remember([("rr:first", owner)])
    stored = subject_keys._stored

    def stored_while_remembering(db: sqlite3.Connection, refs: list[str]) -> dict[str, bytes]:
        # as the writer thread does while the keeper thread commits
        keys.remember([("rr:during", owner)])
        return stored(db, refs)

    monkeypatch.setattr(subject_keys, "_stored", stored_while_remembering)
    keys.commit()
    monkeypatch.setattr(subject_keys, "_stored", stored)
    db = sqlite3.connect(path)
    committed = "SELECT ref FROM record_ref ORDER BY ref"
    assert db.execute(committed).fetchall() == [("rr:first",)]
    keys.commit()
    assert db.execute(committed).fetchall() == [("rr:during",), ("rr:first",)]
    db.close()
    keys.close()
