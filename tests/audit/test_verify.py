"""The verifier finds every kind of damage and names the first bad sequence number."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kzai_guard.audit.checkpoint import Checkpoint, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.segments import encode_line, list_segments, parse_line
from kzai_guard.audit.verify import verify_log

from .conftest import FORMATS, leaf_of, make_record

N = 14
KEY = Signer.generate("verify-key")
RING = Keyring([KEY.public_key])
SEGMENT_STARTS = [0, 5, 10]
SWAPPABLE = [i for i in range(N - 1) if i + 1 not in SEGMENT_STARTS]


@pytest.fixture(scope="module", params=FORMATS, ids=lambda f: f"format{f}")
def log_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A closed log of N records in three segments, checkpoints every 4 records, in each
    format."""
    path = tmp_path_factory.mktemp("verify") / "audit"
    log = AuditLog.open(
        path,
        signer=KEY,
        checkpoint_every=4,
        segment_max_bytes=1800,
        durability="sync",
        log_format=request.param,
    )
    for i in range(N):
        log.write(make_record(i))
    log.close()
    assert [s.first for s in list_segments(path)] == SEGMENT_STARTS
    return path


class _Edit:
    """Rewrites the log's segments as one list of lines, restoring them afterwards."""

    def __init__(self, directory: Path) -> None:
        self.segments = list_segments(directory)
        self.original = {s.path: s.path.read_bytes() for s in self.segments}
        self.lines: list[bytes] = []
        self.owner: list[int] = []
        for k, seg in enumerate(self.segments):
            for line in self.original[seg.path].split(b"\n")[:-1]:
                self.lines.append(line)
                self.owner.append(k)

    def write_raw(self, k: int, data: bytes) -> None:
        self.segments[k].path.write_bytes(data)

    def restore(self) -> None:
        for path, data in self.original.items():
            path.write_bytes(data)


@pytest.fixture
def edit(log_dir: Path) -> Iterator[_Edit]:
    e = _Edit(log_dir)
    yield e
    e.restore()


def _problem(directory: Path) -> tuple[int, str]:
    report = verify_log(directory, RING)
    assert report.problem is not None, "damage went unnoticed"
    return report.problem.seq, report.problem.kind


def test_intact_log_verifies(log_dir: Path) -> None:
    report = verify_log(log_dir, RING)
    assert report.problem is None
    assert (report.records, report.checkpoints, report.signed_size) == (N, 5, N)
    assert report.key_names == ["verify-key"]


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_every_single_byte_change_is_found_at_its_record(
    log_dir: Path, data: st.DataObject
) -> None:
    e = _Edit(log_dir)
    try:
        k = data.draw(st.integers(0, len(e.segments) - 1), label="segment")
        raw = e.original[e.segments[k].path]
        pos = data.draw(st.integers(0, len(raw) - 1), label="byte")
        new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]), label="value")
        e.write_raw(k, raw[:pos] + bytes([new]) + raw[pos + 1 :])
        seq = e.segments[k].first + raw.count(b"\n", 0, pos)
        assert _problem(log_dir)[0] == seq
    finally:
        e.restore()


@pytest.mark.parametrize("i", range(N))
def test_deleted_record_is_missing_or_truncated(edit: _Edit, log_dir: Path, i: int) -> None:
    lines = list(edit.lines)
    del lines[i]
    _rewrite(edit, lines, removed_from=i)
    assert _problem(log_dir) == (i, "truncated" if i == N - 1 else "missing")


@pytest.mark.parametrize("i", range(N))
def test_duplicated_record_is_found_after_the_original(edit: _Edit, log_dir: Path, i: int) -> None:
    k = edit.owner[i]
    raw = edit.original[edit.segments[k].path]
    lines = raw.split(b"\n")[:-1]
    j = i - edit.segments[k].first
    lines.insert(j + 1, lines[j])
    edit.write_raw(k, b"\n".join(lines) + b"\n")
    assert _problem(log_dir) == (i + 1, "duplicated")


@pytest.mark.parametrize("i", SWAPPABLE)
def test_swapped_records_are_reordered(edit: _Edit, log_dir: Path, i: int) -> None:
    k = edit.owner[i]
    raw = edit.original[edit.segments[k].path]
    lines = raw.split(b"\n")[:-1]
    j = i - edit.segments[k].first
    lines[j], lines[j + 1] = lines[j + 1], lines[j]
    edit.write_raw(k, b"\n".join(lines) + b"\n")
    assert _problem(log_dir) == (i, "reordered")


@pytest.mark.parametrize("i", [i - 1 for i in SEGMENT_STARTS[1:]])
def test_records_swapped_across_a_segment_boundary_are_reordered(
    edit: _Edit, log_dir: Path, i: int
) -> None:
    lines = list(edit.lines)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    _rewrite(edit, lines)
    assert _problem(log_dir) == (i, "reordered")


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_every_truncation_is_found(log_dir: Path, data: st.DataObject) -> None:
    e = _Edit(log_dir)
    try:
        k = len(e.segments) - 1
        raw = e.original[e.segments[k].path]
        cut = data.draw(st.integers(0, len(raw) - 1))
        e.write_raw(k, raw[:cut])
        assert _problem(log_dir) == (e.segments[k].first + raw.count(b"\n", 0, cut), "truncated")
    finally:
        e.restore()


def test_rewritten_record_with_recomputed_chain_is_found_by_the_checkpoint(
    edit: _Edit, log_dir: Path
) -> None:
    lines = list(edit.lines)
    value = parse_line(lines[5])
    value["rec"]["verdict"] = "allow-forged"
    lines[5] = encode_line(5, value["prev"], value["rec"], value.get("sealed"))
    for i in range(6, N):
        v = parse_line(lines[i])
        # the attacker rebuilds the chain in the log's format
        prev = leaf_of(int((log_dir / "format").read_text()), lines[i - 1]).hex()
        lines[i] = encode_line(i, prev, v["rec"], v.get("sealed"))
    _rewrite(edit, lines)
    assert _problem(log_dir) == (5, "altered")


@pytest.fixture
def checkpoint_file(log_dir: Path) -> Iterator[Path]:
    path = list_segments(log_dir)[0].checkpoints
    original = path.read_bytes()
    yield path
    path.write_bytes(original)


def _first_note(path: Path) -> SignedCheckpoint:
    note = read_notes(path)[0]
    assert isinstance(note, SignedCheckpoint)
    return note


def test_checkpoint_signed_by_an_unknown_key_is_reported(
    log_dir: Path, checkpoint_file: Path
) -> None:
    note = _first_note(checkpoint_file)
    rest = checkpoint_file.read_text()[len(note.note()) + 1 :]
    forged = note.checkpoint.sign([Signer.generate("verify-key")])
    checkpoint_file.write_text(forged.note() + "\n" + rest)
    assert _problem(log_dir) == (note.checkpoint.size - 1, "unknown-key-checkpoint")


def test_checkpoint_with_another_root_is_forged(log_dir: Path, checkpoint_file: Path) -> None:
    note = _first_note(checkpoint_file)
    rest = checkpoint_file.read_text()[len(note.note()) + 1 :]
    other = Checkpoint(note.checkpoint.origin, note.checkpoint.size, bytes(32))
    forged = SignedCheckpoint(other, note.signatures)
    checkpoint_file.write_text(forged.note() + "\n" + rest)
    assert _problem(log_dir) == (note.checkpoint.size - 1, "forged-checkpoint")


def test_checkpoint_signed_by_trusted_key_for_wrong_root_is_altered_log(
    log_dir: Path, checkpoint_file: Path
) -> None:
    note = _first_note(checkpoint_file)
    rest = checkpoint_file.read_text()[len(note.note()) + 1 :]
    lie = Checkpoint(note.checkpoint.origin, note.checkpoint.size, bytes(32)).sign([KEY])
    checkpoint_file.write_text(lie.note() + "\n" + rest)
    assert _problem(log_dir) == (0, "altered")


def test_garbled_checkpoint_file_is_malformed(log_dir: Path, checkpoint_file: Path) -> None:
    checkpoint_file.write_text("not a note\n\n\u2014 x y\n\n")
    assert _problem(log_dir) == (0, "malformed-checkpoint")


def test_deleted_checkpoints_leave_an_unsigned_tail(log_dir: Path) -> None:
    last = list_segments(log_dir)[-1].checkpoints
    original = last.read_bytes()
    try:
        last.unlink()
        seq, kind = _problem(log_dir)
        assert kind == "unsigned-tail"
        assert seq == list_segments(log_dir)[-1].first
        assert verify_log(log_dir, RING, allow_unsigned_tail=True).ok
    finally:
        last.write_bytes(original)


def _rewrite(edit: _Edit, lines: list[bytes], removed_from: int | None = None) -> None:
    """Write ``lines`` back into the segments they came from (by position)."""
    chunks: dict[int, list[bytes]] = {k: [] for k in range(len(edit.segments))}
    owners = list(edit.owner)
    if removed_from is not None:
        del owners[removed_from]
    for line, k in zip(lines, owners, strict=True):
        chunks[k].append(line)
    for k, chunk in chunks.items():
        edit.write_raw(k, b"".join(line + b"\n" for line in chunk))
