"""Many processes, one log: real processes (multiprocessing with spawn and fork, plain
subprocesses, a bare ``os.fork``) append to one directory and the result is one log."""

from __future__ import annotations

import base64
import multiprocessing
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring, Signer, write_keypair
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import consistency_bundle, verify_bundle
from kzai_guard.audit.reader import DEFAULT_SUBJECT_KEYS, read_verified
from kzai_guard.audit.segments import list_segments, read_origin
from kzai_guard.audit.shredding import AAD_PREFIX, ERASED, subject_ref
from kzai_guard.audit.verify import verify_log
from kzai_guard.cli.main import main

from .conftest import make_record

WRITERS = 4
RECORDS = 150


def _write_records(directory: str, key: str, name: str, durability: str) -> list[str]:
    """Open the log, write RECORDS records named ``name-i``; the ids acknowledged."""
    log = AuditLog.open(
        directory,
        signer=Signer.from_file(Path(key)),
        durability=durability,  # type: ignore[arg-type]
        checkpoint_every=37,
        checkpoint_interval_ms=5,
        segment_max_bytes=40_000,
    )
    acked: list[str] = []
    futures: list[tuple[str, Future[None] | None]] = []
    for i in range(RECORDS):
        record = make_record(i, id=f"{name}-{i}", subject=f"p:{name}-{i % 5}")
        futures.append((record.id, log.write(record)))
        if i % 10 == 9:  # a few in flight at a time: group commits across processes
            for record_id, future in futures:
                if future is not None:
                    future.result()
                    acked.append(record_id)
            futures = []
    for record_id, future in futures:
        if future is not None:
            future.result()
            acked.append(record_id)
    log.close()
    if durability == "async":
        acked = [f"{name}-{i}" for i in range(RECORDS)]  # close() wrote every one
    return acked


def _worker(directory: str, key: str, name: str, durability: str, out: Connection) -> None:
    out.send(_write_records(directory, key, name, durability))
    out.close()


def _check_one_log(directory: Path, public: Path, signer: Signer, acked: list[str]) -> None:
    entries = list(read_verified(directory, public_keys=[signer.public_key]))
    assert [e.seq for e in entries] == list(range(len(entries)))
    ids = [e.record.id for e in entries]
    assert len(ids) == len(set(ids)), "a record was written twice"
    assert sorted(ids) == sorted(acked), "the log does not hold exactly the acknowledged records"
    report = verify_log(directory, Keyring([signer.public_key]))
    assert report.problem is None and report.records == len(acked)
    origin = read_origin(directory)  # the log this test made, named at its creation
    assert origin is not None and re.fullmatch(r"kzai-guard\.invalid/audit/[0-9a-f]{16}", origin)
    assert main(["verify", str(directory), "--public-key", str(public), "--origin", origin]) == 0
    _check_checkpoints_consistent(directory, signer)


def _check_checkpoints_consistent(directory: Path, signer: Signer) -> None:
    """Every checkpoint is consistent with the newest one (proved from the tree files)."""
    notes: list[SignedCheckpoint] = []
    for seg in list_segments(directory):
        notes += [n for n in read_notes(seg.checkpoints) if isinstance(n, SignedCheckpoint)]
    sizes = [n.checkpoint.size for n in notes]
    assert sizes == sorted(sizes), "checkpoints out of order"
    newest = notes[-1].checkpoint
    for note in notes[:-1]:
        old = note.checkpoint
        if old.size == newest.size:
            assert old.root == newest.root
            continue
        bundle = consistency_bundle(directory, old.size, newest.size)
        assert verify_bundle(bundle, Keyring([signer.public_key])).ok


@pytest.mark.parametrize(
    ("method", "durability"), [("spawn", "sync"), ("fork", "async"), ("fork", "sync")]
)
def test_writer_processes_append_to_one_log(tmp_path: Path, method: str, durability: str) -> None:
    key, public, signer = write_keypair(tmp_path / "keys", "fleet")
    directory = tmp_path / "audit"
    context = multiprocessing.get_context(method)
    pipes = [context.Pipe(duplex=False) for _ in range(WRITERS)]
    processes = [
        context.Process(
            target=_worker, args=(str(directory), str(key), f"w{n}", durability, pipes[n][1])
        )
        for n in range(WRITERS)
    ]
    for process in processes:
        process.start()
    acked: list[str] = []
    for (receive, send), process in zip(pipes, processes, strict=True):
        send.close()
        acked += receive.recv()
        process.join(60)
        assert process.exitcode == 0
    assert len(acked) == WRITERS * RECORDS
    _check_one_log(directory, public, signer, acked)


def test_plain_subprocesses_append_to_one_log(tmp_path: Path) -> None:
    key, public, signer = write_keypair(tmp_path / "keys", "fleet")
    directory = tmp_path / "audit"
    script = textwrap.dedent(
        """
        import sys
        from tests.audit.test_many_processes import _write_records
        acked = _write_records(sys.argv[1], sys.argv[2], sys.argv[3], "sync")
        print("\\n".join(acked))
        """
    )
    root = Path(__file__).resolve().parents[2]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(directory), str(key), f"s{n}"],
            stdout=subprocess.PIPE,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        for n in range(WRITERS)
    ]
    acked: list[str] = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        acked += out.decode().split()
    assert len(acked) == WRITERS * RECORDS
    _check_one_log(directory, public, signer, acked)


def test_a_log_opened_before_fork_works_in_the_child_and_the_parent(tmp_path: Path) -> None:
    _key, public, signer = write_keypair(tmp_path / "keys", "fleet")
    directory = tmp_path / "audit"
    log = AuditLog.open(directory, signer=signer, durability="sync")
    # the parent's writer thread runs before the fork, and a record is still queued
    log.write(make_record(0, id="parent-0")).result()  # type: ignore[union-attr]
    pending = log.write(make_record(1, id="parent-1"))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            for i in range(20):
                log.write(make_record(i, id=f"child-{i}")).result()  # type: ignore[union-attr]
            log.close()
            code = 0
        finally:
            os.write(write_fd, str(code).encode())
            os._exit(code)
    os.close(write_fd)
    for i in range(2, 20):
        log.write(make_record(i, id=f"parent-{i}")).result()  # type: ignore[union-attr]
    assert isinstance(pending, Future)
    pending.result()
    _, status = os.waitpid(pid, 0)
    assert os.read(read_fd, 1) == b"0" and os.WEXITSTATUS(status) == 0
    os.close(read_fd)
    log.close()
    acked = [f"parent-{i}" for i in range(20)] + [f"child-{i}" for i in range(20)]
    _check_one_log(directory, public, signer, acked)


def _eraser_peer(directory: str, key: str, commands: Connection) -> None:
    """Another process of the host: writes when told, for the subject it is told."""
    log = AuditLog.open(directory, signer=Signer.from_file(Path(key)), durability="sync")
    while (command := commands.recv()) is not None:
        record_id, subject = command
        log.write(make_record(0, id=record_id, subject=subject)).result()  # type: ignore[union-attr]
        commands.send("ok")
    log.close()
    commands.send("closed")


def _line(directory: Path, record_id: str) -> dict[str, object]:
    for seg in list_segments(directory):
        for raw in seg.path.read_bytes().splitlines():
            value = orjson.loads(raw)
            if value["rec"]["id"] == record_id:
                return dict(value)
    raise AssertionError(f"no line for {record_id}")


def _opens(key: bytes, sealed: dict[str, str], record_id: str) -> bool:
    raw = base64.b64decode(sealed["ct"])
    aad = AAD_PREFIX + record_id.encode() + b"\n" + sealed["ref"].encode()
    try:
        AESGCM(key).decrypt(raw[:12], raw[12:], aad)
    except Exception:
        return False
    return True


def test_an_erasure_in_one_process_is_honoured_by_the_next_batch_of_another(
    tmp_path: Path,
) -> None:
    key, _, signer = write_keypair(tmp_path / "keys", "fleet")
    directory = tmp_path / "audit"
    subject = "p:to-be-erased"
    ref = subject_ref(subject)
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    peer = context.Process(target=_eraser_peer, args=(str(directory), str(key), there))
    log = AuditLog.open(directory, signer=signer, durability="sync")
    peer.start()
    try:
        here.send(("before", subject))  # the peer seals under the key and keeps it cached
        assert here.recv() == "ok"
        db = sqlite3.connect(directory / DEFAULT_SUBJECT_KEYS)
        (old_key,) = db.execute("SELECT key FROM subject_key WHERE ref = ?", (ref,)).fetchone()
        db.close()
        before = _line(directory, "before")["sealed"]
        assert isinstance(before, dict) and _opens(old_key, before, "before")
        log.erase_subject(subject)  # in this process
        here.send(("after", subject))  # the peer's next batch
        assert here.recv() == "ok"
        here.send(None)
        assert here.recv() == "closed"
    finally:
        peer.join(60)
    log.close()
    assert peer.exitcode == 0
    after = _line(directory, "after")["sealed"]
    # each record names its key by a reference of its own
    assert isinstance(after, dict) and after["ref"] not in (ref, before["ref"])
    assert not _opens(old_key, after, "after"), "sealed under the erased key"
    db = sqlite3.connect(directory / DEFAULT_SUBJECT_KEYS)
    (new_key,) = db.execute("SELECT key FROM subject_key WHERE ref = ?", (ref,)).fetchone()
    db.close()
    assert new_key != old_key and _opens(new_key, after, "after")
    for path in directory.glob(DEFAULT_SUBJECT_KEYS + "*"):
        assert old_key not in path.read_bytes()
    subjects = {e.record.id: e.record.subject for e in read_verified(directory)}
    assert subjects["before"] == ERASED and subjects["after"] == subject


def test_the_log_directory_is_private_under_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        directory = tmp_path / "audit"
        log = AuditLog.open(directory, segment_max_bytes=2000, durability="sync")
        for i in range(30):
            log.write(make_record(i)).result()  # type: ignore[union-attr]
        log.erase_subject("p:0001")
        log.close()
        AuditLog.open(directory).close()
    finally:
        os.umask(old)
    assert len(list_segments(directory)) > 2
    wrong = []
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            mode = stat.S_IMODE(os.stat(Path(root) / name).st_mode)
            if mode != 0o700:
                wrong.append((name, oct(mode)))
        for name in files:
            mode = stat.S_IMODE(os.stat(Path(root) / name).st_mode)
            if mode != 0o600:
                wrong.append((name, oct(mode)))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert wrong == []


def test_a_process_joining_an_open_log_takes_its_head_and_the_first_opener_replays(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kzai_guard.audit import file_storage

    replays: list[Path] = []
    real = file_storage.recover

    def counted(directory: Path, tree_files: object, log_format: int) -> object:
        replays.append(directory)
        return real(directory, tree_files, log_format)  # type: ignore[arg-type]

    monkeypatch.setattr(file_storage, "recover", counted)
    directory = tmp_path / "audit"
    first = AuditLog.open(directory, signer=signer)
    first.write(make_record(0)).result()  # type: ignore[union-attr]
    assert len(replays) == 1
    second = AuditLog.open(directory, signer=signer)  # the first holds it open: no replay
    second.write(make_record(1)).result()  # type: ignore[union-attr]
    assert len(replays) == 1
    first.close()
    second.close()
    AuditLog.open(directory, signer=signer).close()  # nobody holds it open: a replay
    assert len(replays) == 2
    assert [e.seq for e in read_verified(directory)] == [0, 1]


def test_the_lock_holder_repairs_what_a_killed_writer_left_while_others_run(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "audit"
    first = AuditLog.open(directory, signer=signer)
    second = AuditLog.open(directory, signer=signer)
    first.write(make_record(0)).result()  # type: ignore[union-attr]
    # the second writer's line and tree hashes reach the files, its head never does: as if it
    # were killed between the two
    monkeypatch.setattr(second._storage, "_write_head", lambda: None)
    second.write(make_record(1)).result()  # type: ignore[union-attr]
    monkeypatch.undo()
    first.write(make_record(2)).result()  # type: ignore[union-attr]
    # a writer killed in the middle of its write leaves a torn line
    segment = list_segments(directory)[-1]
    with open(segment.path, "ab") as f:
        f.write(b'{"prev":"00ab')
    first.write(make_record(3)).result()  # type: ignore[union-attr]
    second.write(make_record(4)).result()  # type: ignore[union-attr]
    second.close()
    first.close()
    entries = list(read_verified(directory, public_keys=[signer.public_key]))
    assert [e.record.id for e in entries] == [make_record(i).id for i in range(5)]
    assert verify_log(directory, Keyring([signer.public_key])).ok
