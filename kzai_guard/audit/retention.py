"""Retention: pruning sealed segments older than the retention period.

The law asks for at least six months of audit trail, so the default keeps 183 days and a
shorter period is refused. Pruning removes whole sealed segments from the oldest on, never the
active one, and only segments whose newest record is past retention. Before it deletes
anything it writes ``anchor.json``: the size of the pruned prefix, the line hash of its last
record, the right edge of the Merkle tree over it, the signed checkpoint for exactly that
size (the checkpoint every segment is sealed with), the retention period, the time of
pruning and the time of the newest pruned record, all signed with the log key
(:mod:`kzai_guard.audit.anchor_signature`). From the anchor the retained segments, their chain
and every later checkpoint still verify, and a verifier can check that nothing was pruned
early.

Then the pruned segments go, with their checkpoint and id index files, and so do the tree
hashes over the pruned records, except the few that proofs into the retained log still use
and, on the tile levels, the tile holding the anchor
(:meth:`~kzai_guard.audit.tree.TreeFiles.release_before`): every retained record can still be
proved against every retained checkpoint, the log proved consistent from the anchor's size
on, and published as tiles from there (:mod:`kzai_guard.audit.tiles`). A consistency proof
from an older size needs the pruned hashes and is no longer possible.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kzai_guard.audit.anchor_signature import MINIMUM_RETENTION_DAYS, sign_anchor
from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.index import INDEX_SUFFIX
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.segments import (
    ANCHOR_FILE,
    Anchor,
    Segment,
    list_segments,
    parse_line,
    read_anchor,
)
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError, ConfigurationError

__all__ = ["DEFAULT_RETENTION_DAYS", "prune"]

DEFAULT_RETENTION_DAYS = MINIMUM_RETENTION_DAYS
"""Six months, the minimum retention of the audit trail."""


def prune(
    directory: str | os.PathLike[str],
    *,
    signer: Signer,
    keep_days: float = DEFAULT_RETENTION_DAYS,
    now: float | None = None,
) -> list[Segment]:
    """Delete sealed segments last written more than ``keep_days`` ago; returns them.

    A segment goes only if its file was last modified and its newest record written before
    the cut-off. The anchor is signed with ``signer``, the log's checkpoint key.
    Raises :class:`~kzai_guard.errors.ConfigurationError` if ``keep_days`` is below the legal
    minimum of 183 days, and :class:`~kzai_guard.errors.AuditLogError` (deleting nothing) if
    the newest segment to prune has no checkpoint sealing it.
    """
    if not keep_days >= MINIMUM_RETENTION_DAYS:
        raise ConfigurationError(
            f"keep_days={keep_days} is below the legal minimum retention of six months; "
            f"keep at least {MINIMUM_RETENTION_DAYS} days"
        )
    path = Path(directory)
    segments = list_segments(path)
    moment = time.time() if now is None else now
    cutoff = moment - keep_days * 86_400
    doomed: list[Segment] = []
    newest = 0
    for seg in segments[:-1]:
        if seg.path.stat().st_mtime >= cutoff:
            break
        written = _newest_record_time(seg)
        if written >= cutoff * 1_000_000:
            break
        doomed.append(seg)
        newest = written
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
    anchor = Anchor(
        size=size,
        prev=prev,
        range=tuple(edge.hashes),
        checkpoint=seal.note(),
        retention_seconds=round(keep_days * 86_400),
        pruned_at=round(moment * 1_000_000),
        newest_pruned=newest,
    )
    anchor = sign_anchor(anchor, signer)
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


def _newest_record_time(seg: Segment) -> int:
    """The time (Unix µs) of the last record of a sealed segment."""
    with open(seg.path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        chunk = 4096
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            data = f.read(size - start).rstrip(b"\n")
            cut = data.rfind(b"\n")
            if cut >= 0 or start == 0:
                break
            chunk *= 4
    try:
        value = int(parse_line(data[cut + 1 :])["rec"]["time"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditLogError(f"the last record of {seg.path} has no readable time: {exc}") from None
    return value


def _sealing_checkpoint(seg: Segment, size: int) -> SignedCheckpoint:
    for note in reversed(read_notes(seg.checkpoints)):
        if isinstance(note, SignedCheckpoint) and note.checkpoint.size == size:
            return note
    raise AuditLogError(
        f"{seg.path} has no checkpoint for size {size}; it cannot be pruned verifiably"
    )
