"""Finding one record and one checkpoint: through the id index, by binary search, or by scanning.

Whatever an index holds (missing, damaged, another segment's), every lookup gives the answer a
scan of the whole log gives.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.index import IdIndex, build_index, index_path, unindexed
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.lookup import (
    checkpoint_at,
    find_record,
    newest_checkpoint,
    recent_checkpoints,
)
from kzai_guard.audit.proof import checkpoints, inclusion_bundle, verify_bundle
from kzai_guard.audit.segments import Segment, list_segments, parse_line
from kzai_guard.errors import AuditLogError

from .conftest import make_record


def _uuid7(i: int) -> str:
    """A UUIDv7-shaped id, in time order like the guard's."""
    h = f"{(1_700_000_000_000 + i) << 80 | 0x7 << 76 | (i * 7919) % 4096 << 64 | 2 << 62:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _write(path: Path, signer: Signer, ids: list[str], **options: object) -> Path:
    options.setdefault("segment_max_bytes", 6000)
    options.setdefault("checkpoint_every", 5)
    log = AuditLog.open(path, signer=signer, **options)  # type: ignore[arg-type]
    for i, record_id in enumerate(ids):
        log.write(make_record(i, id=record_id))
    log.close()
    return path


def _scanned(path: Path) -> dict[str, int]:
    """Each id's first seq, by reading every line: the answer lookups must give."""
    first: dict[str, int] = {}
    for seg in list_segments(path):
        for line in seg.path.read_bytes().split(b"\n")[:-1]:
            value = parse_line(line)
            first.setdefault(value["rec"]["id"], value["seq"])
    return first


IDS = [_uuid7(i) for i in range(60)]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Signer]:
    signer = Signer.generate("test-key")
    path = _write(tmp_path_factory.mktemp("lookup") / "a", signer, IDS)
    return path, signer


@pytest.fixture
def log_copy(pristine: tuple[Path, Signer], tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine[0], tmp_path / "a"))


def test_every_sealed_segment_gets_an_index_that_finds_each_of_its_records(
    log_copy: Path,
) -> None:
    segments = list_segments(log_copy)
    assert len(segments) >= 4
    for seg, nxt in itertools.pairwise(segments):
        index = IdIndex.open(seg, nxt.first - seg.first)
        assert isinstance(index, IdIndex)
        try:
            for seq in range(seg.first, nxt.first):
                assert index.may_hold(IDS[seq])
                assert index.lookup(IDS[seq]) == [seq]
        finally:
            index.close()
    assert not index_path(segments[-1]).exists()


def test_an_index_rules_out_ids_outside_its_segment(log_copy: Path) -> None:
    first, second = list_segments(log_copy)[:2]
    index = IdIndex.open(first, second.first - first.first)
    assert isinstance(index, IdIndex)
    try:
        assert not index.may_hold(IDS[second.first])
        assert index.lookup(IDS[second.first]) == []
    finally:
        index.close()


def test_find_record_by_id_matches_a_full_scan_in_sealed_and_active_segments(
    log_copy: Path,
) -> None:
    for record_id, seq in _scanned(log_copy).items():
        found, line = find_record(log_copy, decision_id=record_id)
        assert found == seq
        assert parse_line(line)["rec"]["id"] == record_id


def test_find_record_by_seq_returns_that_line(log_copy: Path) -> None:
    for seq in range(len(IDS)):
        found, line = find_record(log_copy, seq=seq)
        assert (found, parse_line(line)["seq"]) == (seq, seq)


def test_unknown_id_and_seq_are_not_found(log_copy: Path) -> None:
    with pytest.raises(AuditLogError, match="is not in the retained log"):
        find_record(log_copy, decision_id="no-such-decision")
    with pytest.raises(AuditLogError, match="is not in the retained log"):
        find_record(log_copy, seq=len(IDS))


def test_missing_indexes_fall_back_to_scanning(log_copy: Path) -> None:
    for seg in list_segments(log_copy):
        index_path(seg).unlink(missing_ok=True)
    assert {i: find_record(log_copy, decision_id=i)[0] for i in IDS} == _scanned(log_copy)


def test_an_index_of_another_segment_is_not_used(log_copy: Path) -> None:
    first, second = list_segments(log_copy)[:2]
    shutil.copyfile(index_path(second), index_path(first))
    assert IdIndex.open(first, second.first - first.first) is None
    assert {i: find_record(log_copy, decision_id=i)[0] for i in IDS} == _scanned(log_copy)


def test_an_index_of_the_same_segment_of_another_log_is_not_used(
    log_copy: Path, pristine: tuple[Path, Signer], tmp_path: Path
) -> None:
    other = _write(tmp_path / "other", pristine[1], [_uuid7(i + 1000) for i in range(len(IDS))])
    mine, theirs = list_segments(log_copy)[:2], list_segments(other)[:2]
    assert [s.first for s in mine] == [s.first for s in theirs]
    shutil.copyfile(index_path(theirs[0]), index_path(mine[0]))
    index = IdIndex.open(mine[0], mine[1].first)
    assert isinstance(index, IdIndex)
    try:
        assert not index.matches_segment()
        assert index.lookup(IDS[0]) is None
    finally:
        index.close()
    assert {i: find_record(log_copy, decision_id=i)[0] for i in IDS} == _scanned(log_copy)
    assert mine[0] in unindexed(list_segments(log_copy))


@settings(max_examples=60)
@given(position=st.floats(0, 1, exclude_max=True), value=st.integers(0, 255))
def test_whatever_byte_of_an_index_is_damaged_lookups_stay_correct(
    pristine: tuple[Path, Signer], position: float, value: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(shutil.copytree(pristine[0], Path(tmp) / "a"))
        target = index_path(list_segments(path)[1])
        data = bytearray(target.read_bytes())
        data[int(position * len(data))] ^= value or 0xFF
        target.write_bytes(bytes(data))
        assert {i: find_record(path, decision_id=i)[0] for i in IDS} == _scanned(path)


def test_a_truncated_index_falls_back_to_scanning(log_copy: Path) -> None:
    target = index_path(list_segments(log_copy)[0])
    target.write_bytes(target.read_bytes()[:-10])
    assert {i: find_record(log_copy, decision_id=i)[0] for i in IDS} == _scanned(log_copy)


def test_a_repeated_id_resolves_to_its_first_record(tmp_path: Path, signer: Signer) -> None:
    ids = [_uuid7(i) for i in range(40)]
    ids[25] = ids[31] = ids[33] = ids[3]  # a later segment, and twice in one segment
    path = _write(tmp_path / "a", signer, ids)
    assert find_record(path, decision_id=ids[3])[0] == 3
    (path / f"{0:020d}.log").unlink()  # pretend the first record is gone: next one wins
    assert find_record(path, decision_id=ids[3])[0] == 25


def test_ids_with_escapes_and_unicode_are_indexed(tmp_path: Path, signer: Signer) -> None:
    ids = [f'd"{i}\\\u00e9\u4e2d\U0001f600\n' for i in range(30)]
    path = _write(tmp_path / "a", signer, ids)
    segments = list_segments(path)
    assert index_path(segments[0]).exists()
    for seq, record_id in enumerate(ids):
        assert find_record(path, decision_id=record_id)[0] == seq


def test_missing_indexes_are_rebuilt_when_the_log_is_opened(
    log_copy: Path, pristine: tuple[Path, Signer]
) -> None:
    segments = list_segments(log_copy)
    for seg in segments:
        index_path(seg).unlink(missing_ok=True)
    index_path(segments[0]).with_suffix(".index.tmp").write_bytes(b"torn")
    AuditLog.open(log_copy, signer=pristine[1]).close()
    sealed = list_segments(log_copy)[:-1]
    assert all(index_path(seg).exists() for seg in sealed)
    assert {i: find_record(log_copy, decision_id=i)[0] for i in IDS} == _scanned(log_copy)


def test_a_segment_that_is_not_cleanly_sealed_gets_no_index(tmp_path: Path) -> None:
    seg = Segment(0, tmp_path / f"{0:020d}.log")
    seg.path.write_bytes(b'{"prev":"00","rec":{"id":"a"},"seq":0}\n{"prev":')
    assert build_index(seg) is False
    assert not index_path(seg).exists()


def test_proof_by_id_found_through_the_index_verifies(
    log_copy: Path, pristine: tuple[Path, Signer]
) -> None:
    keyring = Keyring([pristine[1].public_key])
    for seq in (0, 17, len(IDS) - 1):
        bundle = inclusion_bundle(log_copy, decision_id=IDS[seq])
        assert bundle["leaf_index"] == seq
        assert verify_bundle(bundle, keyring).ok


def test_a_line_altered_after_sealing_is_not_proved(log_copy: Path) -> None:
    seg = list_segments(log_copy)[0]
    data = seg.path.read_bytes()
    seg.path.write_bytes(data.replace(b'"latency_us":101', b'"latency_us":999', 1))
    with pytest.raises(AuditLogError, match="does not prove seq 1"):
        inclusion_bundle(log_copy, decision_id=IDS[1])


@settings(max_examples=25)
@given(sizes=st.lists(st.integers(0, 9000), min_size=1, max_size=120))
def test_binary_search_by_seq_finds_every_line_of_any_lengths(
    pristine: tuple[Path, Signer], sizes: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a"
        log = AuditLog.open(path, signer=pristine[1], seal_personal_fields=False)
        for i, size in enumerate(sizes):
            log.write(make_record(i, detail="x" * size))
        log.close()
        for seq in range(len(sizes)):
            found, line = find_record(path, seq=seq)
            assert (found, parse_line(line)["seq"]) == (seq, seq)
            assert parse_line(line)["rec"]["detail"] == "x" * sizes[seq]


def test_newest_and_exact_checkpoints_match_the_full_list(log_copy: Path) -> None:
    every = checkpoints(log_copy)
    newest = newest_checkpoint(log_copy)
    assert isinstance(newest, SignedCheckpoint)
    assert newest.checkpoint == every[-1].checkpoint
    assert [n.checkpoint for n in recent_checkpoints(log_copy, 4)] == [
        n.checkpoint for n in every[-4:]
    ]
    by_size = {n.checkpoint.size: n for n in every}
    for size in range(len(IDS) + 2):
        found = checkpoint_at(log_copy, size)
        expected = by_size.get(size)
        assert (found.checkpoint if found else None) == (expected.checkpoint if expected else None)


def test_a_torn_last_checkpoint_is_skipped(log_copy: Path) -> None:
    every = checkpoints(log_copy)
    last = list_segments(log_copy)[-1].checkpoints
    with open(last, "ab") as f:
        f.write(every[-1].note().encode()[:40])
    newest = newest_checkpoint(log_copy)
    assert newest is not None and newest.checkpoint == every[-1].checkpoint
