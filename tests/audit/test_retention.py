"""Retention: pruning old segments keeps the rest verifiable from a retained checkpoint."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import consistency_bundle, inclusion_bundle, verify_bundle
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.retention import DEFAULT_RETENTION_DAYS, prune
from kzai_guard.audit.segments import Anchor, list_segments, read_anchor
from kzai_guard.audit.verify import verify_log

from .conftest import make_record

DAY = 86_400


def _log(tmp_path: Path, signer: Signer, n: int) -> Path:
    path = tmp_path / "a"
    log = AuditLog.open(path, signer=signer, segment_max_bytes=1800, durability="sync")
    for i in range(n):
        log.write(make_record(i))
    log.close()
    return path


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))


def test_default_retention_is_six_months() -> None:
    assert DEFAULT_RETENTION_DAYS == 183


def test_pruning_keeps_young_segments(tmp_path: Path, signer: Signer) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path)[:-1]:
        _age(seg.path, 182)
    assert prune(path) == []
    assert read_anchor(path) is None


def test_pruned_log_still_verifies_reads_and_proves(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path, signer, 20)
    segments = list_segments(path)
    assert len(segments) == 4
    for seg in segments[:2]:
        _age(seg.path, 200)
    pruned = prune(path)
    assert [s.first for s in pruned] == [0, 5]
    assert [s.first for s in list_segments(path)] == [10, 15]
    anchor = read_anchor(path)
    assert anchor is not None and anchor.size == 10
    report = verify_log(path, keyring)
    assert (report.ok, report.first_seq, report.records) == (True, 10, 10)
    assert [e.seq for e in read_verified(path, public_keys=keyring)] == list(range(10, 20))
    assert verify_bundle(inclusion_bundle(path, decision_id="dec-000012"), keyring).ok
    assert verify_bundle(consistency_bundle(path, 3), keyring).ok


def test_only_a_contiguous_prefix_is_pruned(tmp_path: Path, signer: Signer) -> None:
    path = _log(tmp_path, signer, 20)
    segments = list_segments(path)
    _age(segments[1].path, 400)
    assert prune(path) == []
    _age(segments[0].path, 400)
    assert [s.first for s in prune(path)] == [0, 5]


def test_active_segment_is_never_pruned(tmp_path: Path, signer: Signer) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path):
        _age(seg.path, 1000)
    assert [s.first for s in prune(path)] == [0, 5, 10]
    assert [s.first for s in list_segments(path)] == [15]


def test_log_reopens_and_grows_after_pruning(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path)[:3]:
        _age(seg.path, 1000)
    prune(path)
    log = AuditLog.open(path, signer=signer)
    for i in range(20, 25):
        log.write(make_record(i))
    log.close()
    report = verify_log(path, keyring)
    assert (report.ok, report.first_seq, report.records) == (True, 15, 10)


def test_tampered_anchor_is_reported(tmp_path: Path, signer: Signer, keyring: Keyring) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path)[:2]:
        _age(seg.path, 1000)
    prune(path)
    text = (path / "anchor.json").read_text()
    anchor = read_anchor(path)
    assert isinstance(anchor, Anchor)
    (path / "anchor.json").write_text(text.replace(anchor.range[0].hex(), "00" * 32))
    report = verify_log(path, keyring)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (10, "broken-anchor")


@pytest.mark.parametrize("days", [0.5, 100])
def test_prune_with_custom_period(tmp_path: Path, signer: Signer, days: float) -> None:
    path = _log(tmp_path, signer, 10)
    _age(list_segments(path)[0].path, 1)
    expected = [0] if days < 1 else []
    assert [s.first for s in prune(path, keep_days=days)] == expected
