"""Finding a log directory's true head from its files: crash repair for the file storage.

Run by the holder of the log's lock when the head file cannot be trusted (missing, torn, or
disagreeing with the active segment): after a writer was killed between writing its lines and
its head, or a power failure. The complete lines that continue the chain are adopted, a torn
tail is cut off, the tree hash files are rebuilt where they fall short and cut back where they
run ahead, a torn checkpoint note is removed, and the newest signed checkpoint is found.
"""

from __future__ import annotations

import collections
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.leaf import FORMATS, line_leaf
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.reader import hash_of_last_line
from kzai_guard.audit.segments import (
    GENESIS,
    Anchor,
    Segment,
    list_segments,
    parse_line,
    read_anchor,
    segment_paths,
)
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError

__all__ = ["Recovered", "recover"]


@dataclass(frozen=True, slots=True)
class Recovered:
    """What the files hold: the tree over every adopted line and where the active segment is."""

    tree: CompactRange
    prev: str
    """Hex line hash of the last line (:data:`~kzai_guard.audit.segments.GENESIS` if none)."""
    segment: Segment
    segment_bytes: int
    segment_started: float
    checkpoint: SignedCheckpoint | None


def recover(directory: Path, tree_files: TreeFiles, log_format: int) -> Recovered:
    """Repair the files of ``directory`` (a log in ``log_format``) after a crash and return
    the head they now hold."""
    segments = list_segments(directory)
    anchor = read_anchor(directory)
    if not segments:
        first = anchor.size if anchor else 0
        tree = CompactRange(anchor.size, anchor.range) if anchor else CompactRange()
        seg = segment_paths(directory, first)
        return Recovered(
            tree, anchor.prev if anchor else GENESIS, seg, 0, time.time(), _newest([], anchor)
        )
    last = segments[-1]
    first = last.first
    if tree_files.count(0) < first or not _index_agrees(tree_files, segments, anchor, log_format):
        _rebuild_tree(directory, tree_files, segments, anchor, log_format)
    tree_files.truncate(first)
    if anchor is not None and first == anchor.size and tree_files.count(0) < first:
        tree = CompactRange(anchor.size, anchor.range)
    else:
        tree = tree_files.compact_range(first)
    if first == 0:
        prev = GENESIS
    elif anchor is not None and first == anchor.size:
        prev = anchor.prev
    else:
        prev = tree_files.leaf(first - 1).hex()
    replay = _Replay(tree, prev, first, log_format)
    good, started = replay.segment(last)
    with open(last.path, "r+b") as f:
        f.truncate(good)
    replay.flush(tree_files)
    checkpoint = _repair_checkpoints(last, segments, tree.size, directory)
    return Recovered(tree, replay.prev, last, good, started, checkpoint or _newest([], anchor))


class _Replay:
    """Re-reads segments into a chain and a tree, buffering the tree files' new hashes."""

    def __init__(self, tree: CompactRange, prev: str, seq: int, log_format: int) -> None:
        self.format = log_format
        self.last: bytes | None = None
        """The last line adopted (``None`` before the first of this replay)."""
        self.tree = tree
        self.prev = prev
        self.seq = seq
        self.levels: dict[int, bytearray] = collections.defaultdict(bytearray)

    def _on_node(self, level: int, node: bytes) -> None:
        self.levels[level] += node

    def segment(self, seg: Segment) -> tuple[int, float]:
        """Adopt the lines of ``seg`` that continue the chain; returns (good bytes, start)."""
        data = seg.path.read_bytes()
        offset = 0
        started = time.time()
        while True:
            end = data.find(b"\n", offset)
            if end < 0:
                break
            line = data[offset:end]
            value: dict[str, Any] = {}
            try:
                value = parse_line(line)
                ok = value["seq"] == self.seq and value["prev"] == self.prev
            except ValueError:
                ok = False
            if not ok and value:
                self._refuse_another_format(seg, value)
            if not ok:
                if data.find(b"\n", end + 1) >= 0:
                    raise AuditLogError(
                        f"{seg.path}: line for seq {self.seq} does not continue the chain and "
                        "is followed by more lines; the log was damaged, not torn by a crash. "
                        "Run `kzai-guard verify` on it."
                    )
                break
            if offset == 0:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    started = int(value["rec"]["time"]) / 1_000_000
            h = line_leaf(self.format, line)
            self.tree.append(h, self._on_node)
            self.levels[0] += h
            self.last = line
            self.prev = h.hex()
            self.seq += 1
            offset = end + 1
        return offset, started

    def _refuse_another_format(self, seg: Segment, value: dict[str, Any]) -> None:
        """Raise if the line chains from the one before in another format: the lines are as
        written and the format marker is not, so nothing may be cut as a torn tail."""
        if self.last is None or value["seq"] != self.seq:
            return
        for other in FORMATS:
            if other != self.format and value["prev"] == line_leaf(other, self.last).hex():
                raise AuditLogError(
                    f"{seg.path}: the lines chain in log format {other}, but the log's format "
                    f"is {self.format}: its format marker was changed. Run `kzai-guard verify` "
                    "on it."
                )

    def flush(self, tree_files: TreeFiles) -> None:
        tree_files.append(self.levels)
        for buf in self.levels.values():
            buf.clear()


def _index_agrees(
    tree_files: TreeFiles, segments: list[Segment], anchor: Anchor | None, log_format: int
) -> bool:
    """Whether the stored tree matches the sealed segments where they meet the active one."""
    first = segments[-1].first
    if len(segments) < 2 or first == 0 or (anchor is not None and first == anchor.size):
        return True
    previous = segments[-2]
    if tree_files.leaf(first - 1).hex() != hash_of_last_line(previous.path, log_format):
        return False
    for note in reversed(read_notes(previous.checkpoints)):
        if isinstance(note, SignedCheckpoint) and note.checkpoint.size == first:
            return bool(tree_files.compact_range(first).root() == note.checkpoint.root)
    return True


def _rebuild_tree(
    directory: Path,
    tree_files: TreeFiles,
    segments: list[Segment],
    anchor: Anchor | None,
    log_format: int,
) -> None:
    if anchor is not None:
        raise AuditLogError(
            f"the tree hash files under {directory}/tree are incomplete and the log "
            "was pruned, so they cannot be rebuilt"
        )
    tree_files.truncate(0)
    replay = _Replay(CompactRange(), GENESIS, 0, log_format)
    for seg in segments[:-1]:
        if seg.first != replay.seq:
            raise AuditLogError(f"segment {seg.path} does not start at seq {replay.seq}")
        good, _ = replay.segment(seg)
        if good != seg.path.stat().st_size:
            raise AuditLogError(f"sealed segment {seg.path} is damaged")
        replay.flush(tree_files)


def _repair_checkpoints(
    last: Segment, segments: list[Segment], size: int, directory: Path
) -> SignedCheckpoint | None:
    """Cut a torn note off the active segment's checkpoints; the newest signed checkpoint."""
    path = last.checkpoints
    notes: list[SignedCheckpoint] = []
    if path.exists():
        data = path.read_bytes()
        cut = data.rfind(b"\n\n")
        keep = cut + 2 if cut >= 0 else 0
        if keep != len(data):
            with open(path, "r+b") as f:
                f.truncate(keep)
        notes = [n for n in read_notes(path) if isinstance(n, SignedCheckpoint)]
    if not notes and len(segments) > 1:
        notes = [n for n in read_notes(segments[-2].checkpoints) if isinstance(n, SignedCheckpoint)]
    if not notes:
        return None
    newest = max(notes, key=lambda n: n.checkpoint.size)
    if newest.checkpoint.size > size:
        raise AuditLogError(
            f"a signed checkpoint covers {newest.checkpoint.size} records but only "
            f"{size} survive in {directory}; records were lost"
        )
    return newest


def _newest(notes: list[SignedCheckpoint], anchor: Anchor | None) -> SignedCheckpoint | None:
    """The anchor's checkpoint of a pruned log whose retained segments hold none."""
    if notes:
        return max(notes, key=lambda n: n.checkpoint.size)
    if anchor is None:
        return None
    try:
        return SignedCheckpoint.parse(anchor.checkpoint)
    except ValueError:
        return None
