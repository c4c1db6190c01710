"""The attacks of an insider who can write the audit directory but not sign: each one, as it
was done, fails to produce an OK verify or an open that adopts it, before and after a restart.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from kzai_guard.audit.adoption import read_tail_mark
from kzai_guard.audit.anchor_signature import sign_anchor
from kzai_guard.audit.checkpoint import Checkpoint, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.merkle import CompactRange, leaf_hash
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.retention import prune
from kzai_guard.audit.segments import Anchor, list_segments, read_anchor
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.audit.verify import verify_log
from kzai_guard.cli.main import main
from kzai_guard.errors import AuditLogError, ConfigurationError

from .conftest import make_record
from .tampering import append_record, delete_derived, edit_record, lines_of, rechain

REFUSED = "holds what no writer of it can vouch for"
DAY = 86_400


def _log(path: Path, signer: Signer, n: int, **options: object) -> Path:
    options.setdefault("checkpoint_every", 5)
    log = AuditLog.open(path, signer=signer, durability="sync", **options)  # type: ignore[arg-type]
    for i in range(n):
        log.write(make_record(i))
    log.close()
    return path


def _open(path: Path, signer: Signer, **options: object) -> None:
    options.setdefault("checkpoint_every", 5)
    AuditLog.open(path, signer=signer, **options).close()  # type: ignore[arg-type]


def _repair(path: Path, signer: Signer, action: str) -> int:
    return main(["repair", str(path), action, "--public-key", signer.public_key.vkey()])


@pytest.mark.parametrize("keep_checkpoints", [False, True])
def test_rewrite_and_restart_is_refused(
    tmp_path: Path, signer: Signer, keyring: Keyring, keep_checkpoints: bool
) -> None:
    path = _log(tmp_path / "a", signer, 20)
    assert make_record(12).verdict == "block"
    edit_record(path, 12, verdict="allow")
    rechain(path, 12)
    if keep_checkpoints:
        for pattern in ("*.index*",):
            for file in path.glob(pattern):
                file.unlink()
        for file in (path / "tree").glob("*"):
            file.unlink()
    else:
        delete_derived(path)
    before = sorted(p.name for p in path.iterdir())
    assert not verify_log(path, keyring).ok
    with pytest.raises(AuditLogError, match=REFUSED):
        _open(path, signer)
    # nothing was signed over the rewrite: verify still fails after the attempted restart
    assert not verify_log(path, keyring).ok
    assert not any(p.suffix == ".checkpoints" for p in path.iterdir()) or keep_checkpoints
    assert sorted(p.name for p in path.iterdir() if p.name != "tree") == [
        n for n in before if n != "tree"
    ]
    if keep_checkpoints:
        # the records up to the last checkpoint that still matches stay; the rest is moved aside
        assert _repair(path, signer, "--quarantine") == 0
        _open(path, signer)
        report = verify_log(path, keyring)
        assert (report.ok, report.records) == (True, 10)


def test_repair_of_a_sound_log_changes_nothing(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _log(tmp_path / "a", signer, 7)
    assert _repair(path, signer, "--show") == 0
    assert _repair(path, signer, "--quarantine") == 0
    assert "nothing unexplained" in capsys.readouterr().out
    assert not (path / "quarantine").exists()


def test_a_forged_record_appended_while_stopped_is_refused_and_quarantined(
    tmp_path: Path, signer: Signer, keyring: Keyring, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _log(tmp_path / "a", signer, 7)
    assert read_tail_mark(path) is None  # a clean close leaves no tail and no mark
    forged = {"id": "rev-forged", "kind": "review.completed", "time": 1, "verdict": "allow"}
    append_record(path, forged)
    report = verify_log(path, keyring)
    assert report.problem is not None and report.problem.kind == "unsigned-tail"
    with pytest.raises(AuditLogError, match=r"records 7\.\.7 follow the newest checkpoint"):
        _open(path, signer)
    report = verify_log(path, keyring)
    assert report.problem is not None and report.problem.kind == "unsigned-tail"
    assert _repair(path, signer, "--show") == 1
    shown = capsys.readouterr().out
    assert "records 7..7 aside" in shown
    assert _repair(path, signer, "--quarantine") == 0
    (moved,) = (path / "quarantine").iterdir()
    assert b"rev-forged" in b"".join(p.read_bytes() for p in moved.iterdir() if p.is_file())
    assert moved.stat().st_mode & 0o777 == 0o700
    _open(path, signer)
    report = verify_log(path, keyring)
    assert (report.ok, report.records) == (True, 7)


def test_a_torn_tail_is_still_repaired_at_open(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path / "a", signer, 7)
    with open(list_segments(path)[-1].path, "ab") as f:
        f.write(b'{"prev":"00ab')
    _open(path, signer)
    assert verify_log(path, keyring).ok


def test_a_crash_tail_is_adopted(tmp_path: Path, signer: Signer, keyring: Keyring) -> None:
    path = tmp_path / "a"
    _log(path, signer, 3)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a writer killed before its next checkpoint
        try:
            log = AuditLog.open(
                path,
                signer=signer,
                durability="sync",
                checkpoint_every=100,
                checkpoint_interval_ms=3_600_000,
            )
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
    report = verify_log(path, keyring)
    assert report.problem is not None and report.problem.kind == "unsigned-tail"
    _open(path, signer, checkpoint_every=100)
    report = verify_log(path, keyring)
    assert (report.ok, report.records) == (True, 10)


def test_the_writing_mark_stays_while_any_writer_has_the_log_open(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "a"
    first = AuditLog.open(path, signer=signer, checkpoint_every=5)
    second = AuditLog.open(path, signer=signer, checkpoint_every=5)
    first.write(make_record(0)).result()  # type: ignore[union-attr]
    assert read_tail_mark(path) is not None
    first.close()
    assert read_tail_mark(path) is not None  # the second writer may still leave a tail
    second.close()
    assert read_tail_mark(path) is None


def test_a_crash_tail_longer_than_a_writer_leaves_is_refused(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "a"
    _log(path, signer, 3)
    log = AuditLog.open(path, signer=signer, checkpoint_every=100, checkpoint_interval_ms=10**7)
    for i in range(3, 10):
        log.write(make_record(i))
    log.flush()
    # as if killed now: drop the checkpoint the close would write, by copying the files first
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in path.iterdir():
        if file.is_file():
            (copy / file.name).write_bytes(file.read_bytes())
    log.close()
    with pytest.raises(AuditLogError, match="7 records follow the newest checkpoint"):
        _open(copy, signer, checkpoint_every=5)
    _open(copy, signer, checkpoint_every=100)


def test_the_newest_segment_removed_with_its_checkpoints_left_is_refused(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path / "a", signer, 20, segment_max_bytes=1800)
    segments = list_segments(path)
    assert len(segments) == 4
    segments[-1].path.unlink()
    report = verify_log(path, keyring)
    assert report.problem is not None and report.problem.kind == "truncated"
    with pytest.raises(AuditLogError, match="are gone while their checkpoints remain"):
        _open(path, signer)
    report = verify_log(path, keyring)
    assert report.problem is not None and report.problem.kind == "truncated"
    assert _repair(path, signer, "--quarantine") == 0
    _open(path, signer)
    assert verify_log(path, keyring).ok


def _public_anchor(path: Path, size: int) -> Anchor:
    """The anchor anyone can compute from the files: public leaf hashes, a genuine checkpoint."""
    tree = TreeFiles(path)
    try:
        edge = tree.compact_range(size)
        prev = tree.leaf(size - 1).hex()
    finally:
        tree.close()
    seal = next(
        n
        for seg in list_segments(path)
        for n in read_notes(seg.checkpoints)
        if isinstance(n, SignedCheckpoint) and n.checkpoint.size == size
    )
    return Anchor(size=size, prev=prev, range=tuple(edge.hashes), checkpoint=seal.note())


def _drop_oldest(path: Path, count: int, anchor: Anchor) -> None:
    (path / "anchor.json").write_text(anchor.to_json())
    for seg in list_segments(path)[:count]:
        seg.path.unlink()
        seg.checkpoints.unlink()


def test_oldest_records_removed_under_an_unsigned_anchor_are_refused(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path / "a", signer, 20, segment_max_bytes=1800)
    _drop_oldest(path, 2, _public_anchor(path, 10))
    report = verify_log(path, keyring)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("broken-anchor", 10)
    assert "not signed" in report.problem.message
    with pytest.raises(AuditLogError, match=r"anchor\.json is not signed"):
        _open(path, signer)
    assert not verify_log(path, keyring).ok
    assert not list(read_verified_safely(path, keyring))


def read_verified_safely(path: Path, keyring: Keyring) -> list[int]:
    try:
        return [e.seq for e in read_verified(path, public_keys=keyring)]
    except AuditLogError:
        return []


def test_an_anchor_signed_by_another_key_is_refused(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path / "a", signer, 20, segment_max_bytes=1800)
    anchor = _public_anchor(path, 10)
    stranger = Signer.generate("test-key")
    now = int(time.time() * 1_000_000)
    anchor = dataclasses.replace(
        anchor, retention_seconds=183 * DAY, pruned_at=now, newest_pruned=1
    )
    _drop_oldest(path, 2, sign_anchor(anchor, stranger))
    report = verify_log(path, keyring)
    assert report.problem is not None and report.problem.kind == "broken-anchor"
    with pytest.raises(AuditLogError, match="not a trusted key"):
        _open(path, signer)


def test_an_anchor_that_prunes_records_under_retention_is_refused(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path / "a", signer, 20, segment_max_bytes=1800)
    anchor = _public_anchor(path, 10)
    newest = make_record(9).time
    # even the key holder cannot state a pruning of records younger than the retention
    early = dataclasses.replace(
        anchor,
        retention_seconds=183 * DAY,
        pruned_at=newest + 10 * DAY * 1_000_000,
        newest_pruned=newest,
    )
    _drop_oldest(path, 2, sign_anchor(early, signer))
    report = verify_log(path, keyring)
    assert report.problem is not None
    assert "still under retention" in report.problem.message
    short = dataclasses.replace(
        anchor, retention_seconds=DAY, pruned_at=newest + 2 * DAY * 1_000_000, newest_pruned=newest
    )
    (path / "anchor.json").write_text(sign_anchor(short, signer).to_json())
    report = verify_log(path, keyring)
    assert report.problem is not None and "below the legal minimum" in report.problem.message


def test_a_pruning_states_its_rule_and_time_under_the_log_key(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path / "a", signer, 20, segment_max_bytes=1800)
    later = time.time() + 400 * DAY
    assert [s.first for s in prune(path, signer=signer, now=later)] == [0, 5, 10]
    anchor = read_anchor(path)
    assert anchor is not None and anchor.signature is not None
    assert anchor.retention_seconds == 183 * DAY
    assert anchor.pruned_at == round(later * 1_000_000)
    assert anchor.newest_pruned == make_record(14).time
    assert verify_log(path, keyring).ok
    _open(path, signer)
    assert verify_log(path, keyring).ok


@pytest.mark.parametrize("days", [0, 1, 182.9])
def test_pruning_below_the_legal_minimum_is_refused(
    tmp_path: Path, signer: Signer, days: float
) -> None:
    path = _log(tmp_path / "a", signer, 20, segment_max_bytes=1800)
    with pytest.raises(ConfigurationError, match="below the legal minimum"):
        prune(path, signer=signer, keep_days=days, now=time.time() + 400 * DAY)
    assert read_anchor(path) is None
    assert len(list_segments(path)) == 4


def test_a_forged_checkpoint_over_a_rewrite_is_refused(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path / "a", signer, 10)
    edit_record(path, 8, verdict="allow")
    rechain(path, 8)
    delete_derived(path)
    stranger = Signer.generate("test-key")  # the same name, not the same key
    tree = CompactRange()
    for line in lines_of(path):
        tree.append(leaf_hash(line))
    note = Checkpoint((path / "origin").read_text().strip(), tree.size, tree.root()).sign(
        [stranger]
    )
    list_segments(path)[0].checkpoints.write_text(note.note() + "\n")
    with pytest.raises(AuditLogError, match="has no trusted key"):
        _open(path, signer)
    report = verify_log(path, keyring)
    assert report.problem is not None and report.problem.kind == "unknown-key-checkpoint"
