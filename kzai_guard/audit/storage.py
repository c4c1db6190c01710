"""Where an audit log is kept: the small interface between the sequencer and a storage.

The log's format (lines, chain, tree, checkpoints) is pure and lives in
:mod:`~kzai_guard.audit.lines`, :mod:`~kzai_guard.audit.merkle` and
:mod:`~kzai_guard.audit.checkpoint`; the per-process writer is
:class:`~kzai_guard.audit.sequencer.Sequencer`. A storage only stores and sequences: any number
of processes (and, for a shared database, hosts) hold a storage of the same log, and each batch
of one of them is appended inside ``with storage.sequence() as appending:``, which excludes
every other writer of the log until the block ends (a file lock, a row lock). Inside it the
writer reads :attr:`Appending.head`, encodes its batch after it, and appends the lines, the
tree nodes they complete and, when one is due, a signed checkpoint.

The file storage is :class:`~kzai_guard.audit.file_storage.FileStorage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from kzai_guard.audit.checkpoint import SignedCheckpoint

__all__ = ["EMPTY_PREV", "Appending", "LogHead", "LogStorage", "next_edge"]

EMPTY_PREV = bytes(32)
"""The :attr:`LogHead.prev` of an empty log (the line ``prev`` of 64 zeros)."""


@dataclass(frozen=True, slots=True)
class LogHead:
    """The state of the log a writer appends after, as the sequencing lock holder sees it."""

    size: int
    """Records in the log."""
    prev: bytes
    """The 32-byte leaf hash of the last line; :data:`EMPTY_PREV` when the log is empty."""
    edge: tuple[bytes, ...]
    """The :class:`~kzai_guard.audit.merkle.CompactRange` hashes of the tree at :attr:`size`."""
    checkpoint: SignedCheckpoint | None
    """The newest signed checkpoint (``None`` before the first)."""
    checkpoint_time: float
    """``time.time()`` when :attr:`checkpoint` was signed (0.0 if there is none)."""
    erasures: int
    """A counter every subject-key erasure bumps: a writer that sees it change drops the keys
    it cached before it seals its next batch."""

    @property
    def checkpoint_size(self) -> int:
        """Records covered by the newest checkpoint (0 if there is none)."""
        return 0 if self.checkpoint is None else self.checkpoint.checkpoint.size


class Appending(Protocol):
    """One writer's exclusive hold on the log, valid only inside ``storage.sequence()``."""

    head: LogHead
    """The current head; :meth:`append`, :meth:`add_checkpoint` and :meth:`note_erasure`
    update it."""

    @property
    def room(self) -> int:
        """How many bytes (newlines included) the next :meth:`append` may add; when it is 0 or
        less the storage wants :meth:`rotate` first (the file storage: the segment is full or
        old). A plain attribute does as well."""
        ...

    def append(
        self,
        lines: Sequence[bytes],
        hashes: Sequence[bytes],
        nodes: Sequence[Sequence[bytes]],
        durable: bool,
    ) -> None:
        """Append ``lines`` (seq ``head.size`` on, without ``"\\n"``) with their leaf hashes.

        ``nodes`` are the tree nodes the lines complete, per level from level 1 up, as
        :meth:`~kzai_guard.audit.merkle.CompactRange.extend` returns them. ``durable``: the
        lines are on stable storage when this returns (fsync, synchronous commit). Raises
        ``OSError`` (or the storage's error) and stores nothing if the lines cannot be stored.
        """
        ...

    def add_checkpoint(self, signed: SignedCheckpoint, durable: bool) -> None:
        """Store ``signed`` (for ``head.size`` records) as the newest checkpoint."""
        ...

    def note_erasure(self) -> None:
        """Bump ``head.erasures``: a subject key was erased under this hold."""
        ...

    def rotate(self) -> None:
        """Seal what was appended so far as a unit of its own and start the next one.

        The file storage starts a new segment (the caller has covered ``head.size`` with a
        checkpoint first); a storage without segments does nothing.
        """
        ...


class LogStorage(Protocol):
    """One log's storage, as one process holds it."""

    origin: str
    """The log's origin (the first line of its checkpoints)."""
    format: int
    """The log's format (:mod:`kzai_guard.audit.leaf`), fixed when the log was created."""

    def sequence(self) -> AbstractContextManager[Appending]:
        """Hold the log exclusively, across processes and hosts, for one batch."""
        ...

    def after_fork(self) -> None:
        """In a forked child: drop every lock, descriptor and connection made by the parent
        (without closing what the parent still uses), so the next use makes its own."""
        ...

    def close(self) -> None:
        """Release what this process holds; the log stays for the other writers."""
        ...


def next_edge(
    size: int, edge: Sequence[bytes], hashes: Sequence[bytes], nodes: Sequence[Sequence[bytes]]
) -> tuple[bytes, ...]:
    """The tree's right edge after ``hashes`` are appended to a tree of ``size`` leaves.

    ``edge`` is the edge before, ``nodes`` what
    :meth:`~kzai_guard.audit.merkle.CompactRange.extend` returned for ``hashes``: every piece
    of the new edge is one of those or of the old edge, so no hash is computed again.

    >>> from kzai_guard.audit.merkle import CompactRange
    >>> tree = CompactRange(); leaves = [bytes([i]) * 32 for i in range(5)]
    >>> nodes = tree.extend(leaves)
    >>> next_edge(0, (), leaves, nodes) == tuple(tree.hashes)
    True
    """
    old = dict(zip(_levels(size), edge, strict=True))
    new_size = size + len(hashes)
    out: list[bytes] = []
    for level in _levels(new_size):
        index = (new_size >> level) - 1
        first_new = size >> level
        if index < first_new:
            out.append(old[level])
        elif level == 0:
            out.append(hashes[index - size])
        else:
            out.append(nodes[level - 1][index - first_new])
    return tuple(out)


def _levels(size: int) -> list[int]:
    """The levels of the set bits of ``size``, highest first (the order of an edge)."""
    return [level for level in range(size.bit_length() - 1, -1, -1) if size >> level & 1]
