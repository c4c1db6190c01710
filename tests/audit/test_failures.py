"""When the log cannot be written it says so and refuses records; nothing is lost silently."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import Future
from pathlib import Path

import pytest

from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditLogError, AuditUnavailable

from .conftest import make_record

ROOT = Path(__file__).resolve().parents[2]

DISK_FULL = textwrap.dedent(
    """
    import resource, signal, sys
    from kzai_guard.audit.keys import Signer
    from kzai_guard.audit.log import AuditLog
    from kzai_guard.audit.shredding import MemorySubjectKeys
    from kzai_guard.errors import AuditLogError, AuditUnavailable
    from tests.audit.conftest import make_record

    directory, durability, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    log = AuditLog.open(directory, signer=Signer.from_file(sys.argv[4]), durability=durability,
                        subject_keys=MemorySubjectKeys(), checkpoint_every=1_000_000)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    accepted = 0
    try:
        for i in range(100_000):
            future = log.write(make_record(i))
            if future is not None:
                future.result()
            accepted += 1
    except AuditUnavailable as exc:
        print("refused after", accepted, "::", exc)
    print("healthy", log.healthy)
    try:
        log.write(make_record(10**6))
    except AuditUnavailable as exc:
        print("next write refused ::", exc)
    try:
        log.close()
        print("closed cleanly")
    except AuditLogError as exc:
        print("close failed ::", exc)
    """
)


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def _key(tmp_path: Path) -> tuple[Path, Signer]:
    from kzai_guard.audit.keys import write_keypair

    private, _, signer = write_keypair(tmp_path / "keys", "disk-test")
    return private, signer


def test_full_disk_in_sync_mode_refuses_and_keeps_every_acknowledged_record(
    tmp_path: Path,
) -> None:
    private, signer = _key(tmp_path)
    out = _run(DISK_FULL, str(tmp_path / "a"), "sync", "20000", str(private))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused after ")
    assert "File too large" in lines[0]
    acked = int(lines[0].split()[2])
    assert lines[1:] == [
        "healthy False",
        lines[2],
        "closed cleanly",
    ]
    assert lines[2].startswith("next write refused :: the audit log ")
    assert "cannot be written" in lines[2]
    log = AuditLog.open(tmp_path / "a", signer=signer)
    log.close()
    assert [e.record.id for e in read_verified(tmp_path / "a")] == [
        make_record(i).id for i in range(acked)
    ]
    assert verify_log(tmp_path / "a", Keyring([signer.public_key])).ok


def test_full_disk_in_async_mode_reports_every_record_it_could_not_write(
    tmp_path: Path,
) -> None:
    private, signer = _key(tmp_path)
    out = _run(DISK_FULL, str(tmp_path / "a"), "async", "20000", str(private))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused after ")
    accepted = int(lines[0].split()[2])
    assert lines[1] == "healthy False"
    assert lines[3].startswith("close failed :: ")
    lost = int(lines[3].split(":: ")[1].split()[0])
    assert "accepted audit records could not be written" in lines[3]
    log = AuditLog.open(tmp_path / "a", signer=signer)
    log.close()
    written = [e.record.id for e in read_verified(tmp_path / "a")]
    assert written == [make_record(i).id for i in range(accepted - lost)]
    assert lost > 0


READ_ONLY = textwrap.dedent(
    """
    import sys
    from kzai_guard.audit.keys import Signer
    from kzai_guard.audit.log import AuditLog
    from kzai_guard.errors import AuditLogError
    try:
        AuditLog.open(sys.argv[1], signer=Signer.generate("k"))
    except AuditLogError as exc:
        print("refused ::", exc)
    """
)


def _can_mount_read_only(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"mount --bind {probe} {probe} && mount -o remount,ro,bind {probe}"
    try:
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", script], capture_output=True, check=False
        )
    except FileNotFoundError:
        return False
    return done.returncode == 0


def test_read_only_directory_is_refused_at_open_with_a_clear_error(
    tmp_path: Path, signer: Signer
) -> None:
    if not _can_mount_read_only(tmp_path):
        pytest.skip("needs unshare -m and a read-only bind mount (root in a container)")
    directory = tmp_path / "ro"
    log = AuditLog.open(directory, signer=signer)
    log.write(make_record(0))
    log.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = (
        f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory} && "
        f"exec {sys.executable} -c '{READ_ONLY}' {directory}"
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"refused :: cannot open audit log directory {directory}: "
        f"[Errno 30] Read-only file system: '{directory}/.lock'"
    )


def test_read_only_directory_is_refused_at_open_for_the_current_user(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AuditLogError, match="cannot open audit log directory"):
        AuditLog.open(blocker / "audit")


def test_write_errors_make_the_log_unhealthy_then_it_recovers(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, durability="async")
    log.write(make_record(0))
    log.flush()
    writable = log._storage._fd
    log._storage._fd = os.open(tmp_path / "a" / "00000000000000000000.log", os.O_RDONLY)
    log.write(make_record(1))
    with pytest.raises(AuditUnavailable, match="cannot be written: \\[Errno 9\\] Bad file"):
        log.flush(timeout=5)
    assert log.healthy is False
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        log.write(make_record(2))
    os.close(log._storage._fd)
    log._storage._fd = writable
    log.close()
    assert [e.seq for e in read_verified(tmp_path / "a")] == [0, 1]
    assert verify_log(tmp_path / "a", keyring).ok


def test_sync_log_becomes_healthy_again_once_the_disk_takes_writes(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    import time

    log = AuditLog.open(tmp_path / "a", signer=signer, durability="sync")
    first = log.write(make_record(0))
    assert isinstance(first, Future)
    first.result()
    writable = log._storage._fd
    log._storage._fd = os.open(tmp_path / "a" / "00000000000000000000.log", os.O_RDONLY)
    failed = log.write(make_record(1))
    assert isinstance(failed, Future)
    with pytest.raises(AuditUnavailable, match="Bad file descriptor"):
        failed.result(timeout=5)
    assert log.healthy is False
    os.close(log._storage._fd)
    log._storage._fd = writable
    deadline = time.monotonic() + 10
    while not log.healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.healthy is True
    again = log.write(make_record(2))
    assert isinstance(again, Future)
    again.result(timeout=5)
    log.close()
    assert [e.record.id for e in read_verified(tmp_path / "a")] == ["dec-000000", "dec-000002"]
    assert verify_log(tmp_path / "a", keyring).ok


class _Draft:
    """A record still to be built, counting its builds."""

    def __init__(self, record: AuditRecord) -> None:
        self.record = record
        self.builds = 0

    def build(self) -> AuditRecord:
        self.builds += 1
        return self.record


def test_a_draft_queued_while_the_disk_refuses_is_built_once_and_written_when_it_is_back(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, durability="async")
    log.write(make_record(0))
    log.flush()
    writable = log._storage._fd
    log._storage._fd = os.open(tmp_path / "a" / "00000000000000000000.log", os.O_RDONLY)
    draft = _Draft(make_record(1))
    log.write_draft(draft)
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        log.flush(timeout=5)
    assert (log.healthy, draft.builds) == (False, 1)
    with pytest.raises(AuditUnavailable, match="cannot be written"):
        log.write_draft(_Draft(make_record(2)))
    os.close(log._storage._fd)
    log._storage._fd = writable
    log.close()
    assert draft.builds == 1
    assert [e.record.id for e in read_verified(tmp_path / "a")] == ["dec-000000", "dec-000001"]
    assert verify_log(tmp_path / "a", keyring).ok
