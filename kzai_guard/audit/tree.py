"""Per-level hash files: the stored Merkle tree that makes proofs O(log n).

``tree/level-LL.hashes`` holds, as fixed 32-byte entries, the root of every complete aligned
subtree of ``2**LL`` leaves, in order: level 0 is the leaf hashes, level 1 the hashes of leaf
pairs, and so on. Together they take about 64 bytes per record. Any range the RFC 9162 proof
recursion asks for is the fold of at most one stored hash per level, so an inclusion or
consistency proof reads O(log n) hashes and never the log itself.

The files are derived data: the log rebuilds their tail from the segments when it reopens
after a crash (:meth:`TreeFiles.truncate` then re-appending), so they are flushed with every
batch but only fsynced when a segment is sealed.

After retention pruning, :meth:`TreeFiles.release_before` frees the hashes the retained log no
longer needs. It punches holes in place (Linux ``fallocate``) instead of rewriting the files, so
every hash keeps its offset and a writer appending at the same time is not disturbed.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from kzai_guard.audit.merkle import EMPTY_ROOT, CompactRange, node_hash
from kzai_guard.errors import AuditLogError

__all__ = ["HASH_SIZE", "TILE_HEIGHT", "TreeFiles", "first_kept"]

HASH_SIZE = 32
TILE_HEIGHT = 8
"""Tree levels per C2SP tlog-tiles tile level: a tile holds ``2**8 == 256`` hashes of level
``8 * L``."""
_MAX_LEVELS = 64
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


class TreeFiles:
    """Read and append the per-level hash files under ``directory/tree``."""

    def __init__(self, directory: Path, *, writable: bool = False) -> None:
        self.directory = directory / "tree"
        self.writable = writable
        if writable:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}

    def _path(self, level: int) -> Path:
        return self.directory / f"level-{level:02d}.hashes"

    def _fd(self, level: int) -> int:
        fd = self._fds.get(level)
        if fd is None:
            if self.writable:
                fd = os.open(self._path(level), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            else:
                fd = os.open(self._path(level), os.O_RDONLY)
            self._fds[level] = fd
        return fd

    def count(self, level: int = 0) -> int:
        """How many complete hashes level ``level`` holds."""
        try:
            return self._path(level).stat().st_size // HASH_SIZE
        except FileNotFoundError:
            return 0

    def get(self, level: int, index: int) -> bytes:
        """The hash of leaves ``[index * 2**level, (index + 1) * 2**level)``."""
        try:
            data = os.pread(self._fd(level), HASH_SIZE, index * HASH_SIZE)
        except FileNotFoundError:
            data = b""
        if len(data) != HASH_SIZE:
            raise AuditLogError(
                f"tree hash level {level} index {index} is missing from {self.directory}; "
                "open the log once with AuditLog.open to rebuild its index"
            )
        return data

    def leaf(self, index: int) -> bytes:
        """The leaf hash of entry ``index``."""
        return self.get(0, index)

    def subtree(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` for a range whose start is aligned to its largest piece.

        Every range the RFC 9162 proof recursion produces has that shape.
        """
        if end <= start:
            return EMPTY_ROOT
        pieces: list[bytes] = []
        pos = start
        remaining = end - start
        for level in range(remaining.bit_length() - 1, -1, -1):
            if remaining >> level & 1:
                if pos % (1 << level):
                    raise ValueError(f"range [{start}, {end}) is not aligned")
                pieces.append(self.get(level, pos >> level))
                pos += 1 << level
        root = pieces[-1]
        for h in reversed(pieces[:-1]):
            root = node_hash(h, root)
        return root

    def compact_range(self, size: int) -> CompactRange:
        """The right edge of the first ``size`` leaves, read from the level files."""
        hashes: list[bytes] = []
        pos = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                hashes.append(self.get(level, pos >> level))
                pos += 1 << level
        return CompactRange(size, hashes)

    def append(self, buffers: dict[int, bytearray]) -> None:
        """Append buffered hashes, level by level (raises ``OSError`` on I/O failure)."""
        for level, data in buffers.items():
            if data:
                fd = self._fd(level)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]

    def truncate(self, size: int) -> None:
        """Cut every level back to what a tree of ``size`` leaves has completed."""
        for level in range(_MAX_LEVELS):
            path = self._path(level)
            if not path.exists():
                break
            keep = (size >> level) * HASH_SIZE
            if path.stat().st_size != keep:
                os.truncate(path, keep)

    def release_before(self, size: int) -> int:
        """Free the hashes below the first ``size`` leaves that no proof from there needs.

        What stays is :func:`first_kept` on: at level ``L``, entry ``(size >> L) - 1`` (the
        piece of the tree's right edge at ``size``, or a left sibling of a path into the
        retained leaves) and everything after it, enough for inclusion proofs of every leaf
        from ``size`` on and consistency proofs from every size from ``size`` on; on the levels
        tiles are made of, the whole tile holding entry ``size >> L``, so that every tile whose
        end is past ``size`` can still be published. Returns how many bytes were released (0
        where the file system cannot punch holes; the hashes then stay on disk, which is
        harmless).
        """
        released = 0
        for level in range(_MAX_LEVELS):
            path = self._path(level)
            if not path.exists():
                break
            drop = first_kept(size, level) * HASH_SIZE
            if drop and _punch_hole(path, drop):
                released += drop
        return released

    def sync(self) -> None:
        """fsync every open level file."""
        for fd in self._fds.values():
            os.fsync(fd)

    def close(self) -> None:
        """Close the open files."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def first_kept(size: int, level: int) -> int:
    """The first hash of ``level`` a log pruned below ``size`` keeps (see
    :meth:`TreeFiles.release_before`).

    >>> first_kept(1000, 0), first_kept(1000, 1), first_kept(1000, 8)
    (768, 499, 0)
    """
    edge = max((size >> level) - 1, 0)
    if level % TILE_HEIGHT:
        return edge
    tile_start = (size >> level) >> TILE_HEIGHT << TILE_HEIGHT
    return min(edge, tile_start)


def _punch_hole(path: Path, length: int) -> bool:
    """Deallocate the first ``length`` bytes of ``path``, keeping its size; False if unsupported."""
    fallocate = _fallocate()
    if fallocate is None:
        return False
    fd = os.open(path, os.O_WRONLY)
    try:
        return fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, 0, length) == 0
    finally:
        os.close(fd)


@functools.cache
def _fallocate() -> Callable[[int, int, int, int], int] | None:
    """libc's ``fallocate(fd, mode, offset, length)``, where there is one."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    func.restype = ctypes.c_int
    return cast("Callable[[int, int, int, int], int]", func)
