"""Retention: pruning sealed segments older than the retention period.

The law asks for at least six months of audit trail, so the default keeps 183 days. Pruning
removes whole sealed segments from the oldest on, never the active one. Before it deletes
anything it writes ``anchor.json``: the size of the pruned prefix, the line hash of its last
record, the right edge of the Merkle tree over it and the signed checkpoint for exactly that
size (the checkpoint every segment is sealed with). From the anchor the retained segments,
their chain and every later checkpoint still verify.

Then the pruned segments go, with their checkpoint and id index files, and so do the tree
hashes over the pruned records, except the few that proofs into the retained log still use
(:meth:`~kzai_guard.audit.tree.TreeFiles.release_before`): every retained record can still be
proved against every retained checkpoint, and the log proved consistent from the anchor's size
on. A consistency proof from an older size needs the pruned hashes and is no longer possible.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.index import INDEX_SUFFIX
from kzai_guard.audit.segments import ANCHOR_FILE, Anchor, Segment, list_segments, read_anchor
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError

__all__ = ["DEFAULT_RETENTION_DAYS", "prune"]

DEFAULT_RETENTION_DAYS = 183
"""Six months, the minimum retention of the audit trail."""


def prune(
    directory: str | os.PathLike[str],
    *,
    keep_days: float = DEFAULT_RETENTION_DAYS,
    now: float | None = None,
) -> list[Segment]:
    """Delete sealed segments last written more than ``keep_days`` ago; returns them.

    Raises :class:`~kzai_guard.errors.AuditLogError` (and deletes nothing) if the newest
    segment to prune has no checkpoint sealing it.
    """
    path = Path(directory)
    segments = list_segments(path)
    cutoff = (time.time() if now is None else now) - keep_days * 86_400
    doomed: list[Segment] = []
    for seg in segments[:-1]:
        if seg.path.stat().st_mtime >= cutoff:
            break
        doomed.append(seg)
    if not doomed:
        _release_tree(path)
        return []
    size = segments[len(doomed)].first
    seal = _sealing_checkpoint(doomed[-1], size)
    tree = TreeFiles(path)
    try:
        edge = tree.compact_range(size)
        prev = tree.leaf(size - 1).hex()
    finally:
        tree.close()
    if edge.root() != seal.checkpoint.root:
        raise AuditLogError(
            f"the tree hash files disagree with the checkpoint sealing {doomed[-1].path}; "
            "run `kzai-guard verify` before pruning"
        )
    anchor = Anchor(size=size, prev=prev, range=tuple(edge.hashes), checkpoint=seal.note())
    tmp = path / (ANCHOR_FILE + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(anchor.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / ANCHOR_FILE)
    for seg in doomed:
        seg.path.unlink()
        seg.checkpoints.unlink(missing_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _release_tree(path)
    return doomed


def _release_tree(path: Path) -> None:
    """Free what the anchor made unnecessary: indexes of pruned segments, old tree hashes.

    Run again at every pruning, so that a crash between deleting segments and this step only
    postpones it.
    """
    anchor = read_anchor(path)
    if anchor is None:
        return
    for index in path.glob("*" + INDEX_SUFFIX + "*"):
        first = index.name.split(".", 1)[0]
        if first.isdigit() and int(first) < anchor.size:
            index.unlink(missing_ok=True)
    tree = TreeFiles(path)
    try:
        tree.release_before(anchor.size)
    finally:
        tree.close()


def _sealing_checkpoint(seg: Segment, size: int) -> SignedCheckpoint:
    for note in reversed(read_notes(seg.checkpoints)):
        if isinstance(note, SignedCheckpoint) and note.checkpoint.size == size:
            return note
    raise AuditLogError(
        f"{seg.path} has no checkpoint for size {size}; it cannot be pruned verifiably"
    )
