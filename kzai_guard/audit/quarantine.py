"""Showing and moving aside what no writer of an audit log explains.

When :mod:`kzai_guard.audit.adoption` refuses to open a directory, :func:`survey` reads every
retained line (checking the chain as it goes) and every checkpoint, and says what differs and
how much of the log is still confirmed: ``keep``, the size of the newest checkpoint that is
signed by a trusted key and matches the records as they are now (or the anchor of a pruned
log). :func:`quarantine` then moves everything after ``keep`` into
``AUDIT_DIR/quarantine/<UTC time>/`` for investigation: later segments whole, the part of a
segment after record ``keep - 1`` (the segment keeps its first part), checkpoint notes beyond
``keep``, checkpoint files whose segment is gone, and a copy of the tree hash files, with a
``manifest.json`` that says what was moved and why. Nothing is deleted: every byte moved can
be read back from the quarantine directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from kzai_guard.audit.adoption import Adoption, adoption, read_tail_mark
from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.leaf import line_leaf
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.segments import (
    GENESIS,
    Segment,
    fsync_directory,
    list_segments,
    parse_line,
    read_anchor,
    read_format,
    read_origin,
)
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.audit.verify import orphan_checkpoints

__all__ = ["QUARANTINE_DIR", "Survey", "quarantine", "survey"]

QUARANTINE_DIR = "quarantine"
"""The directory under the log directory that :func:`quarantine` moves things into."""


@dataclass(slots=True)
class Survey:
    """What :func:`survey` found.

    ``size`` records chain from the start (``first``: 0, or the anchor of a pruned log);
    ``broken_at`` is the first line that does not continue the chain (``None`` if all do);
    ``keep`` records are confirmed by a trusted checkpoint that matches them; ``problem`` is
    what no writer explains (``None``: the log opens as it is); ``orphans`` are checkpoint
    files whose segment is gone.
    """

    directory: Path
    first: int = 0
    size: int = 0
    lines: int = 0
    broken_at: int | None = None
    keep: int = 0
    problem: str | None = None
    orphans: list[Path] = field(default_factory=list)

    def report(self) -> str:
        """A human-readable account."""
        out = [
            f"audit log {self.directory}: {self.lines} lines from seq {self.first}, "
            f"{self.size - self.first} chained, {self.keep - self.first} confirmed by a "
            "trusted checkpoint"
        ]
        if self.problem is None:
            out.append("nothing unexplained: the log opens as it is")
            return "\n".join(out)
        out.append(f"unexplained: {self.problem}")
        total = self.first + self.lines
        if total > self.keep:
            out.append(f"the quarantine would move records {self.keep}..{total - 1} aside")
        for orphan in self.orphans:
            out.append(f"the quarantine would move {orphan.name} aside")
        return "\n".join(out)


def survey(directory: Path, keyring: Keyring, *, tail_limit: int = 10_000) -> Survey:
    """Read the whole directory and judge it as an opening writer would (``tail_limit`` is
    the writers' ``checkpoint_every``)."""
    found = Survey(directory)
    anchor = read_anchor(directory)
    origin = read_origin(directory)
    log_format = read_format(directory)
    start = anchor.size if anchor is not None else 0
    segments = [s for s in list_segments(directory) if s.first >= start]
    notes: list[SignedCheckpoint] = []
    for seg in [*segments, *orphan_checkpoints(directory, segments, start)]:
        notes += [n for n in read_notes(seg.checkpoints) if isinstance(n, SignedCheckpoint)]
    wanted = {n.checkpoint.size for n in notes}
    mark = read_tail_mark(directory)
    if mark is not None:
        wanted.add(mark.checkpoint.size)
    tree = CompactRange(anchor.size, anchor.range) if anchor is not None else CompactRange()
    prev = anchor.prev if anchor is not None else GENESIS
    roots: dict[int, bytes] = {tree.size: tree.root()}
    found.first = found.size = start
    for seg in segments:
        data = seg.path.read_bytes()
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" after a final newline, else a torn line
        found.lines += len(lines) + (1 if torn and seg is not segments[-1] else 0)
        if found.broken_at is not None:
            continue
        if seg.first != tree.size:
            found.broken_at = tree.size
            continue
        for line in lines:
            try:
                value = parse_line(line)
                ok = value["seq"] == tree.size and value["prev"] == prev
            except ValueError:
                ok = False
            if not ok:
                found.broken_at = tree.size
                break
            h = line_leaf(log_format, line)
            tree.append(h)
            prev = h.hex()
            if tree.size in wanted:
                roots[tree.size] = tree.root()
        if torn and seg is not segments[-1] and found.broken_at is None:
            found.broken_at = tree.size
    found.size = tree.size
    roots[tree.size] = tree.root()
    found.keep = max(
        [start]
        + [
            n.checkpoint.size
            for n in notes
            if n.checkpoint.size <= tree.size
            and roots.get(n.checkpoint.size) == n.checkpoint.root
            and (origin is None or n.checkpoint.origin == origin)
            and n.status(keyring) is CheckpointStatus.VALID
        ]
    )
    if found.broken_at is not None:
        found.problem = f"the line for seq {found.broken_at} does not continue the chain"
        return found
    judged: Adoption = adoption(
        directory,
        keyring,
        size=tree.size,
        active_first=segments[-1].first if segments else start,
        root_at=lambda n: roots.get(n, b""),
        tail_limit=tail_limit,
    )
    found.problem = judged.problem
    found.orphans = list(judged.orphans)
    if judged.problem is None:
        found.keep = tree.size
    return found


def quarantine(found: Survey) -> Path | None:
    """Move what ``found`` does not confirm into a new quarantine directory; returns it
    (``None`` if there was nothing to move)."""
    if found.problem is None:
        return None
    directory = found.directory
    keep = found.keep
    target = directory / QUARANTINE_DIR / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    suffix = 0
    while target.exists():
        suffix += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{suffix}")
    target.mkdir(mode=0o700, parents=True)
    os.chmod(target.parent, 0o700)
    moved: list[str] = []

    def move(path: Path) -> None:
        if path.exists():
            os.replace(path, target / path.name)
            moved.append(path.name)

    if (directory / "tree").is_dir():
        shutil.copytree(directory / "tree", target / "tree")
        moved.append("tree/ (copied)")
    for seg in list_segments(directory):
        if seg.first >= keep and seg.first >= found.first:
            move(seg.path)
            move(seg.checkpoints)
            for index in directory.glob(seg.path.stem + ".index*"):
                move(index)
        elif seg.first < keep:
            _split(seg, keep, target, moved)
    for orphan in found.orphans:
        move(orphan)
    tree = TreeFiles(directory, writable=True)
    try:
        if tree.count(0) > keep:
            tree.truncate(keep)
    finally:
        tree.close()
    manifest = {
        "problem": found.problem,
        "kept_records": keep,
        "moved": moved,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for path in target.rglob("*"):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    fsync_directory(directory)
    return target


def _split(seg: Segment, keep: int, target: Path, moved: list[str]) -> None:
    """Move the lines from seq ``keep`` on, and notes beyond ``keep``, out of ``seg``."""
    data = seg.path.read_bytes()
    offset = 0
    for _ in range(keep - seg.first):
        end = data.find(b"\n", offset)
        if end < 0:
            return
        offset = end + 1
    if offset < len(data):
        (target / f"{seg.path.name}.from-{keep}").write_bytes(data[offset:])
        with open(seg.path, "r+b") as f:
            f.truncate(offset)
            os.fsync(f.fileno())
        moved.append(f"{seg.path.name} from seq {keep}")
    notes = read_notes(seg.checkpoints)
    kept = [n for n in notes if isinstance(n, SignedCheckpoint) and n.checkpoint.size <= keep]
    if len(kept) != len(notes):
        shutil.copyfile(seg.checkpoints, target / seg.checkpoints.name)
        seg.checkpoints.write_text("".join(n.note() + "\n" for n in kept))
        moved.append(f"{seg.checkpoints.name} notes beyond size {keep}")
