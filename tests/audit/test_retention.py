"""Retention: pruning old segments keeps the rest verifiable from a retained checkpoint."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kzai_guard.audit.index import index_path
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from kzai_guard.audit.proof import checkpoints, consistency_bundle, inclusion_bundle, verify_bundle
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.retention import DEFAULT_RETENTION_DAYS, prune
from kzai_guard.audit.segments import Anchor, list_segments, read_anchor
from kzai_guard.audit.tree import HASH_SIZE, TreeFiles, _fallocate, first_kept
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditLogError

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
    assert prune(path, signer=signer) == []
    assert read_anchor(path) is None


def test_pruned_log_still_verifies_reads_and_proves(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path, signer, 20)
    segments = list_segments(path)
    assert len(segments) == 4
    for seg in segments[:2]:
        _age(seg.path, 200)
    pruned = prune(path, signer=signer)
    assert [s.first for s in pruned] == [0, 5]
    assert [s.first for s in list_segments(path)] == [10, 15]
    anchor = read_anchor(path)
    assert anchor is not None and anchor.size == 10
    report = verify_log(path, keyring)
    assert (report.ok, report.first_seq, report.records) == (True, 10, 10)
    assert [e.seq for e in read_verified(path, public_keys=keyring)] == list(range(10, 20))
    assert verify_bundle(inclusion_bundle(path, decision_id="dec-000012"), keyring).ok
    assert verify_bundle(consistency_bundle(path, 10), keyring).ok


def test_only_a_contiguous_prefix_is_pruned(tmp_path: Path, signer: Signer) -> None:
    path = _log(tmp_path, signer, 20)
    segments = list_segments(path)
    _age(segments[1].path, 400)
    assert prune(path, signer=signer) == []
    _age(segments[0].path, 400)
    assert [s.first for s in prune(path, signer=signer)] == [0, 5]


def test_active_segment_is_never_pruned(tmp_path: Path, signer: Signer) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path):
        _age(seg.path, 1000)
    assert [s.first for s in prune(path, signer=signer)] == [0, 5, 10]
    assert [s.first for s in list_segments(path)] == [15]


def test_log_reopens_and_grows_after_pruning(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path)[:3]:
        _age(seg.path, 1000)
    prune(path, signer=signer)
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
    prune(path, signer=signer)
    text = (path / "anchor.json").read_text()
    anchor = read_anchor(path)
    assert isinstance(anchor, Anchor)
    (path / "anchor.json").write_text(text.replace(anchor.range[0].hex(), "00" * 32))
    report = verify_log(path, keyring)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (10, "broken-anchor")


@pytest.mark.parametrize("days", [200.5, 400])
def test_prune_with_custom_period(tmp_path: Path, signer: Signer, days: float) -> None:
    path = _log(tmp_path, signer, 10)
    _age(list_segments(path)[0].path, 300)
    expected = [0] if days < 300 else []
    assert [s.first for s in prune(path, signer=signer, keep_days=days)] == expected


def _level_files(path: Path) -> list[Path]:
    return sorted((path / "tree").glob("level-*.hashes"))


def _allocated(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in _level_files(path))


def test_pruning_frees_the_tree_hashes_of_pruned_records(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    if _fallocate() is None:
        pytest.skip("this platform cannot punch holes in files")
    path = tmp_path / "a"
    log = AuditLog.open(path, signer=signer, segment_max_bytes=20_000, checkpoint_every=50)
    for i in range(1200):
        log.write(make_record(i))
    log.close()
    segments = list_segments(path)
    sizes = [p.stat().st_size for p in _level_files(path)]
    before = _allocated(path)
    for seg in segments[: len(segments) * 3 // 4]:
        _age(seg.path, 400)
    prune(path, signer=signer)
    anchor = read_anchor(path)
    assert anchor is not None and anchor.size > 600
    assert [p.stat().st_size for p in _level_files(path)] == sizes
    assert _allocated(path) <= before - 16 * 1024
    level0 = (path / "tree" / "level-00.hashes").read_bytes()
    released = first_kept(anchor.size, 0) * HASH_SIZE  # the tile holding the anchor stays
    assert released == anchor.size // 256 * 256 * HASH_SIZE
    assert level0[:released] == bytes(released)
    assert not any(index_path(seg).exists() for seg in segments if seg.first < anchor.size)
    for seq in range(anchor.size, 1200, 37):
        assert verify_bundle(inclusion_bundle(path, seq=seq), keyring).ok
    for note in checkpoints(path):
        if note.checkpoint.size >= anchor.size:
            bundle = consistency_bundle(path, anchor.size, note.checkpoint.size)
            assert verify_bundle(bundle, keyring).ok
    assert verify_log(path, keyring).ok
    log = AuditLog.open(path, signer=signer)
    for i in range(1200, 1300):
        log.write(make_record(i))
    log.close()
    assert verify_log(path, keyring).ok
    assert verify_bundle(inclusion_bundle(path, decision_id="dec-001250"), keyring).ok
    assert verify_bundle(consistency_bundle(path, anchor.size), keyring).ok


def test_consistency_from_before_the_anchor_is_refused(tmp_path: Path, signer: Signer) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path)[:2]:
        _age(seg.path, 200)
    prune(path, signer=signer)
    with pytest.raises(AuditLogError, match="can start at size 10 or later"):
        consistency_bundle(path, 9)


def test_a_prune_interrupted_before_the_tree_is_finished_on_the_next_one(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    path = _log(tmp_path, signer, 20)
    for seg in list_segments(path)[:2]:
        _age(seg.path, 200)
    anchor_size = list_segments(path)[2].first
    level0, level1 = (path / "tree" / f"level-0{n}.hashes" for n in (0, 1))
    whole = level0.read_bytes(), level1.read_bytes()
    prune(path, signer=signer)
    level0.write_bytes(whole[0])  # as if the process died before releasing the tree
    level1.write_bytes(whole[1])
    assert prune(path, signer=signer) == []
    if _fallocate() is not None:
        # level 0 keeps the tile holding the anchor (tiles are published from it), level 1
        # keeps the anchor's left sibling on
        assert (first_kept(anchor_size, 0), first_kept(anchor_size, 1)) == (0, 4)
        assert level0.read_bytes() == whole[0]
        assert level1.read_bytes()[: 4 * HASH_SIZE] == bytes(4 * HASH_SIZE)
        assert level1.read_bytes()[4 * HASH_SIZE :] == whole[1][4 * HASH_SIZE :]
    assert verify_bundle(inclusion_bundle(path, seq=anchor_size), keyring).ok


@settings(max_examples=60)
@given(data=st.data(), size=st.integers(1, 300))
def test_the_hashes_kept_prove_every_retained_leaf_and_every_later_size(
    data: st.DataObject, size: int
) -> None:
    if _fallocate() is None:
        pytest.skip("this platform cannot punch holes in files")
    keep = data.draw(st.integers(1, size), label="anchor size")
    leaves = [leaf_hash(b"%d" % i) for i in range(size)]
    with tempfile.TemporaryDirectory() as tmp:
        tree = TreeFiles(Path(tmp), writable=True)
        edge = CompactRange()
        levels: dict[int, bytearray] = {0: bytearray()}
        for h in leaves:
            edge.append(h, lambda level, node: levels.setdefault(level, bytearray()).extend(node))
            levels[0] += h
        tree.append(levels)
        tree.release_before(keep)
        tree.close()
        tree = TreeFiles(Path(tmp))
        try:
            # every hash of a tile whose end is past the anchor stays (tiles are served)
            for level in range(0, size.bit_length(), 8):
                start = (keep >> level) >> 8 << 8
                for i in range(start, size >> level):
                    assert tree.get(level, i) != bytes(HASH_SIZE)
            root = edge.root()
            for index in range(keep, size):
                path = inclusion_proof(index, size, tree.subtree)
                assert verify_inclusion(index, size, leaves[index], path, root)
            for old in range(keep, size + 1):
                old_root = tree.subtree(0, old)
                assert old_root == _reference_root(leaves[:old])
                proof = consistency_proof(old, size, tree.subtree)
                assert verify_consistency(old, size, old_root, root, proof)
        finally:
            tree.close()


def _reference_root(leaves: list[bytes]) -> bytes:
    edge = CompactRange()
    for h in leaves:
        edge.append(h)
    return edge.root()
