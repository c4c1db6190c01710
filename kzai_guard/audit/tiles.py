"""The log published as C2SP ``tlog-tiles``: static files any tlog client can prove from.

:func:`write_tiles` writes, under an output directory served as the log's URL prefix:

- ``checkpoint``: the newest signed checkpoint, with the witnesses' cosignatures kept for it;
- ``tile/<L>/<N>``: full tiles of 256 hashes, and ``tile/<L>/<N>.p/<W>`` the partial tiles of
  the checkpoint's size. ``<N>`` is written in 3-digit groups, all but the last prefixed with
  ``x`` (index 1234067 is ``x001/x234/067``). A level-``L`` hash is the root of a complete
  subtree of ``256**L`` leaves: exactly what the log keeps in ``tree/level-(8L).hashes``.
- a format-2 log (:mod:`kzai_guard.audit.leaf`, the default for new logs):
  ``tile/entries/<N>[.p/<W>]``, the spec's entry bundles (big-endian uint16 length, then the
  bytes), each entry the 32-byte commitment ``SHA-256(line)`` of one record, which is the
  tree's entry: any tlog client hashes the entries to the level-0 tiles and rebuilds the
  signed root, and a person who holds their own line (their receipt carries it) hashes it to
  their entry. A commitment says nothing about the record.
- a format-1 log: ``tile/commitments/<N>[.p/<W>]``, framed like entry bundles, each entry the
  32-byte leaf hash ``SHA-256(0x00 || line)``. The tree's entry of a format-1 log is the whole
  line, which carries the key reference of the person's records and the record's open members
  (and, without a key store, its personal fields in clear); those stay where they can be
  erased, so ``tile/entries/`` is not written, and the spec lets a log serve entries in another
  format at another URL.

Full tiles are immutable: those already in the output directory are not written again, so
publishing after each checkpoint costs the new tiles only.

A pruned log (one with an ``anchor.json`` of size ``A``) is published from its minimum index
``A`` on, as the spec's pruning allows: a tile whose end is at or below ``A`` is not written,
every later one is. The entry bundle that holds ``A`` also holds pruned records, whose lines
are gone, so entries are published from the next multiple of 256 on
(:attr:`TilesReport.entries_from`). Pruning keeps every hash of those tiles
(:func:`~kzai_guard.audit.tree.first_kept`); a log pruned by an older version released some of
them, and the tiles that would need a released hash cannot exist: they are not written and
:attr:`TilesReport.withheld` names each, with the records that cannot be proved from the tiles.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.leaf import COMMITMENTS, entry
from kzai_guard.audit.lookup import LogLookup
from kzai_guard.audit.merkle import leaf_hash
from kzai_guard.audit.segments import list_segments, read_anchor, read_format
from kzai_guard.audit.tree import HASH_SIZE, TILE_HEIGHT, TreeFiles
from kzai_guard.audit.witnesses import cosigned_note, read_cosigned
from kzai_guard.errors import AuditLogError

__all__ = ["TILE_WIDTH", "TilesReport", "WithheldTile", "tile_path", "write_tiles"]

TILE_WIDTH = 256
"""Hashes in a full tile."""

_RELEASED = bytes(HASH_SIZE)  # what a hash punched out of a level file reads as


def tile_path(level: int | str, index: int, width: int | None = None) -> str:
    """The tile's path below the prefix: ``tile/<L>/<N>[.p/<W>]``."""
    groups = []
    n = index
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    name = "/".join([*("x" + g for g in groups[:-1]), groups[-1]])
    suffix = "" if width is None or width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{name}{suffix}"


@dataclass(frozen=True, slots=True)
class WithheldTile:
    """A tile of a pruned log that cannot exist: some of its hashes were released.

    The retained records ``first``..``last`` (inclusive) cannot be proved from the tiles.
    """

    path: str
    released: int
    first: int
    last: int

    def message(self) -> str:
        """One line saying what is missing and what it costs."""
        return (
            f"{self.path}: {self.released} of its hashes cover pruned records and were released "
            f"by an earlier pruning; records {self.first}..{self.last} cannot be proved from "
            "the tiles (prove them with `kzai-guard prove`)"
        )


class TilesReport:
    """What :func:`write_tiles` wrote: the checkpoint's size, the minimum index (the anchor's
    size, 0 for a log never pruned), the log's format, the first index of the published entry
    bundles (format 2; ``None`` for a format-1 log), the files written and the tiles
    withheld."""

    __slots__ = ("entries_from", "log_format", "minimum_index", "size", "withheld", "written")

    def __init__(self, size: int, minimum_index: int, log_format: int) -> None:
        self.size = size
        self.minimum_index = minimum_index
        self.log_format = log_format
        self.entries_from: int | None = None
        self.written: list[str] = []
        self.withheld: list[WithheldTile] = []


def write_tiles(directory: str | os.PathLike[str], out: str | os.PathLike[str]) -> TilesReport:
    """Write the tiles, entry (or, for a format-1 log, commitment) bundles and checkpoint of
    the log's newest checkpoint."""
    path, target = Path(directory), Path(out)
    log_format = read_format(path)
    anchor = read_anchor(path)
    minimum = anchor.size if anchor is not None else 0
    note = LogLookup(path).newest_checkpoint()
    if note is None:
        raise AuditLogError(f"{path} has no signed checkpoint to publish")
    size = note.checkpoint.size
    report = TilesReport(size, minimum, log_format)
    tree = TreeFiles(path)
    try:
        if tree.compact_range(size).root() != note.checkpoint.root:
            raise AuditLogError(
                f"the tree files of {path} do not match the checkpoint for size {size}; "
                "run `kzai-guard verify`"
            )
        level = 0
        while size >> (TILE_HEIGHT * level):
            _write_level(tree, target, level, report)
            level += 1
        if log_format == COMMITMENTS:
            _write_entries(path, tree, target, report)
    finally:
        tree.close()
    published: SignedCheckpoint = cosigned_note(note, read_cosigned(path))
    _write(target / "checkpoint", published.note().encode())
    report.written.append("checkpoint")
    return report


def _write_level(tree: TreeFiles, target: Path, level: int, report: TilesReport) -> None:
    height = TILE_HEIGHT * level
    count = report.size >> height
    span = 1 << height  # leaves under one hash of this level
    # tiles ending at or below the minimum index are pruned; the spec lets them go
    first_tile = (report.minimum_index >> height) // TILE_WIDTH
    # below this hash, an earlier pruning may have released hashes (they read as zeros)
    edge = max((report.minimum_index >> height) - 1, 0)
    for n in range(first_tile, (count + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, count - n * TILE_WIDTH)
        rel = tile_path(level, n, width)
        if width == TILE_WIDTH and (target / rel).exists():
            continue
        start = n * TILE_WIDTH
        hashes = [tree.get(height, start + i) for i in range(width)]
        released = sum(1 for i in range(min(width, edge - start)) if hashes[i] == _RELEASED)
        if released:
            first = max(start * span, report.minimum_index)
            last = min((start + width) * span, report.size) - 1
            report.withheld.append(WithheldTile(rel, released, first, last))
            continue
        _write(target / rel, b"".join(hashes))
        report.written.append(rel)
        if level == 0 and report.log_format != COMMITMENTS:
            bundle = b"".join(struct.pack(">H", len(h)) + h for h in hashes)
            rel = tile_path("commitments", n, width)
            _write(target / rel, bundle)
            report.written.append(rel)


def _write_entries(path: Path, tree: TreeFiles, target: Path, report: TilesReport) -> None:
    """The entry bundles of a format-2 log: its commitments, from the first bundle not yet
    written (full bundles are immutable) to the checkpoint's size."""
    size = report.size
    n = -(-report.minimum_index // TILE_WIDTH)  # the first bundle of retained records only
    report.entries_from = min(n * TILE_WIDTH, size)
    while (n + 1) * TILE_WIDTH <= size and (target / tile_path("entries", n)).exists():
        n += 1
    start = n * TILE_WIDTH
    if start >= size:
        return
    bundle = bytearray()
    seq = start
    segments = list_segments(path)
    ends = [s.first for s in segments[1:]] + [size]
    for seg, end in zip(segments, ends, strict=True):
        if end <= seq or seg.first >= size:
            continue  # before the first bundle to write, or past the checkpoint
        if seg.first > seq:
            break
        lines = seg.path.read_bytes().split(b"\n")
        for line in lines[seq - seg.first : min(len(lines) - 1, size - seg.first)]:
            commitment = entry(COMMITMENTS, line)
            if leaf_hash(commitment) != tree.get(0, seq):
                raise AuditLogError(
                    f"the line for seq {seq} does not match the tree files of {path}; "
                    "run `kzai-guard verify`"
                )
            bundle += struct.pack(">H", len(commitment)) + commitment
            seq += 1
            if seq % TILE_WIDTH == 0 or seq == size:
                width = seq - (seq - 1) // TILE_WIDTH * TILE_WIDTH
                rel = tile_path("entries", (seq - 1) // TILE_WIDTH, width)
                _write(target / rel, bytes(bundle))
                report.written.append(rel)
                bundle.clear()
    if seq != size:
        raise AuditLogError(f"{path} holds records up to seq {seq - 1}, not {size - 1}")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
