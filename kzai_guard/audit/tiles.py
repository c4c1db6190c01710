"""The log published as C2SP ``tlog-tiles``: static files any tlog client can prove from.

:func:`write_tiles` writes, under an output directory served as the log's URL prefix:

- ``checkpoint``: the newest signed checkpoint, with the witnesses' cosignatures kept for it;
- ``tile/<L>/<N>``: full tiles of 256 hashes, and ``tile/<L>/<N>.p/<W>`` the partial tiles of
  the checkpoint's size. ``<N>`` is written in 3-digit groups, all but the last prefixed with
  ``x`` (index 1234067 is ``x001/x234/067``). A level-``L`` hash is the root of a complete
  subtree of ``256**L`` leaves: exactly what the log keeps in ``tree/level-(8L).hashes``.
- ``tile/commitments/<N>[.p/<W>]``: commitment bundles, framed like entry bundles (big-endian
  uint16 length, then the bytes), each entry the 32-byte leaf hash ``SHA-256(0x00 || line)``
  of one record: a commitment to it, never the record.

The records themselves (the leaf inputs, ``tile/entries/``) are not published: they hold
pseudonyms and sealed personal data that must stay where they can be erased. The tlog-tiles
spec lets a log serve entries in another format at another URL; the commitments are that. A
person with a receipt holds their own record and checks it against the tiles.

Full tiles are immutable: those already in the output directory are not written again, so
publishing after each checkpoint costs the new tiles only. A pruned log (one with an
``anchor.json``) is refused: its early hashes are released.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.lookup import LogLookup
from kzai_guard.audit.segments import read_anchor
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.audit.witnesses import cosigned_note, read_cosigned
from kzai_guard.errors import AuditLogError

__all__ = ["TILE_WIDTH", "TilesReport", "tile_path", "write_tiles"]

TILE_WIDTH = 256
"""Hashes in a full tile."""

_HEIGHT = 8  # tree levels per tile level: 256 == 2**8


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


class TilesReport:
    """What :func:`write_tiles` wrote: the checkpoint's size and the files written."""

    __slots__ = ("size", "written")

    def __init__(self, size: int) -> None:
        self.size = size
        self.written: list[str] = []


def write_tiles(directory: str | os.PathLike[str], out: str | os.PathLike[str]) -> TilesReport:
    """Write the tiles, commitment bundles and checkpoint of the log's newest checkpoint."""
    path, target = Path(directory), Path(out)
    if read_anchor(path) is not None:
        raise AuditLogError(f"{path} is pruned; its early tree hashes were released")
    note = LogLookup(path).newest_checkpoint()
    if note is None:
        raise AuditLogError(f"{path} has no signed checkpoint to publish")
    size = note.checkpoint.size
    report = TilesReport(size)
    tree = TreeFiles(path)
    try:
        if tree.compact_range(size).root() != note.checkpoint.root:
            raise AuditLogError(
                f"the tree files of {path} do not match the checkpoint for size {size}; "
                "run `kzai-guard verify`"
            )
        level = 0
        while size >> (_HEIGHT * level):
            count = size >> (_HEIGHT * level)
            for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
                width = min(TILE_WIDTH, count - n * TILE_WIDTH)
                rel = tile_path(level, n, width)
                if width == TILE_WIDTH and (target / rel).exists():
                    continue
                hashes = [tree.get(_HEIGHT * level, n * TILE_WIDTH + i) for i in range(width)]
                _write(target / rel, b"".join(hashes))
                report.written.append(rel)
                if level == 0:
                    bundle = b"".join(struct.pack(">H", len(h)) + h for h in hashes)
                    rel = tile_path("commitments", n, width)
                    _write(target / rel, bundle)
                    report.written.append(rel)
            level += 1
    finally:
        tree.close()
    published: SignedCheckpoint = cosigned_note(note, read_cosigned(path))
    _write(target / "checkpoint", published.note().encode())
    report.written.append("checkpoint")
    return report


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
