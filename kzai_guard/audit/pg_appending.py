"""One hold of the PostgreSQL audit log: the head row locked, batches appended under it.

:class:`PostgresAppending` is what :meth:`PostgresLogStorage.sequence
<kzai_guard.audit.pg_storage.PostgresLogStorage.sequence>` yields. An append inserts the lines
and the tree nodes they complete (one statement below 256 lines, ``COPY`` from there on),
moves the head and commits through the storage, which settles a commit broken off mid-way;
then it locks the head again, since another writer may have appended in between.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.storage import LogHead, next_edge
from kzai_guard.errors import AuditLogError, AuditUnavailable

if TYPE_CHECKING:
    from kzai_guard.audit.pg_storage import PostgresLogStorage

__all__ = ["PostgresAppending", "lock_head"]

_HASH = 32
_ROOM = 64 * 1024 * 1024
"""Bytes one batch may add: bounds a transaction, not the log."""
_LOCK_HEAD = (
    "SELECT size, prev, edge, checkpoint, checkpoint_time, erasures "
    "FROM kzg_log_head WHERE id = 1 FOR UPDATE"
)
_APPEND = """
    WITH entries AS (
        INSERT INTO kzg_log_entries (seq, line)
        SELECT %(first)s + ord - 1, line
        FROM unnest(%(lines)s::bytea[]) WITH ORDINALITY AS batch(line, ord)
    ), nodes AS (
        INSERT INTO kzg_log_tree (level, index, hash)
        SELECT * FROM unnest(%(levels)s::int2[], %(indexes)s::int8[], %(nodes)s::bytea[])
    )
    UPDATE kzg_log_head SET size = %(size)s, prev = %(prev)s, edge = %(edge)s WHERE id = 1
"""
_MOVE_HEAD = (
    "UPDATE kzg_log_head SET size = %(size)s, prev = %(prev)s, edge = %(edge)s WHERE id = 1"
)
_COPY_ENTRIES = "COPY kzg_log_entries (seq, line) FROM STDIN (FORMAT BINARY)"
_COPY_TREE = "COPY kzg_log_tree (level, index, hash) FROM STDIN (FORMAT BINARY)"
_COPY_FROM = 256
"""Lines from which a batch is inserted with COPY rather than in one statement."""


class PostgresAppending:
    """The head row locked for one batch: what :meth:`PostgresLogStorage.sequence` yields.

    :meth:`append` commits before it returns (and, if ``durable``, waits until the WAL is on
    disk, which makes every earlier commit durable too) and locks the head again; checkpoints
    and erasures are committed with the next append or when the block ends.
    """

    room = _ROOM

    def __init__(self, storage: PostgresLogStorage, conn: Any, head: LogHead) -> None:
        self.conn = conn
        self.head = head
        self.pending = False
        """Whether the open transaction holds a checkpoint or an erasure to commit."""
        self.pending_durable = False
        """Whether that must commit synchronously."""
        self.broken: BaseException | None = None
        """Why the hold was lost; every later call raises."""
        self._storage = storage

    def append(
        self,
        lines: Sequence[bytes],
        hashes: Sequence[bytes],
        nodes: Sequence[Sequence[bytes]],
        durable: bool,
    ) -> None:
        """Insert ``lines`` and the tree ``nodes``, move the head past them and commit."""
        self._check()
        try:
            if not lines:
                if durable:  # make what was committed so far durable
                    self._storage._commit(self.conn, True, None)
                    self._relock()
                return
            head = self.head
            size = head.size
            edge = next_edge(size, head.edge, hashes, nodes)
            end = size + len(lines)
            levels, indexes, hashes_up = _tree_rows(size, nodes)
            head_row = {"size": end, "prev": hashes[-1], "edge": b"".join(edge)}
            if len(lines) < _COPY_FROM:
                # one statement, one round trip: lines, tree nodes and head
                self.conn.execute(
                    _APPEND,
                    {
                        "first": size,
                        "lines": lines,
                        "levels": levels,
                        "indexes": indexes,
                        "nodes": hashes_up,
                        **head_row,
                    },
                )
            else:
                # COPY costs a few round trips, then moves rows at twice the rate of unnest
                with self.conn.cursor() as cur:
                    with cur.copy(_COPY_ENTRIES) as copy:
                        copy.set_types(["int8", "bytea"])
                        for entry in zip(range(size, end), lines, strict=True):
                            copy.write_row(entry)
                    if hashes_up:
                        with cur.copy(_COPY_TREE) as copy:
                            copy.set_types(["int2", "int8", "bytea"])
                            for node in zip(levels, indexes, hashes_up, strict=True):
                                copy.write_row(node)
                self.conn.execute(_MOVE_HEAD, head_row)
            self._storage._commit(
                self.conn, durable or self.pending_durable, (end, bytes(lines[-1]))
            )
        except Exception as exc:
            self.broken = exc
            if isinstance(exc, AuditUnavailable):
                raise
            raise self._storage._unavailable(exc) from exc
        self.head = replace(head, size=end, prev=hashes[-1], edge=edge)
        self._relock()

    def add_checkpoint(self, signed: SignedCheckpoint, durable: bool) -> None:
        """Store ``signed`` and make it the head's newest checkpoint."""
        self._check()
        note = signed.note()
        now = time.time()
        self.conn.execute(
            "INSERT INTO kzg_log_checkpoints (size, note, signed_at) VALUES (%s, %s, %s)",
            (signed.checkpoint.size, note, now),
        )
        self.conn.execute(
            "UPDATE kzg_log_head SET checkpoint = %s, checkpoint_time = %s WHERE id = 1",
            (note, now),
        )
        self.head = replace(self.head, checkpoint=signed, checkpoint_time=now)
        self.pending = True
        self.pending_durable = self.pending_durable or durable

    def note_erasure(self) -> None:
        """Bump the head's erasure counter (the writers of other processes drop their keys)."""
        self._check()
        self.conn.execute("UPDATE kzg_log_head SET erasures = erasures + 1 WHERE id = 1")
        self.head = replace(self.head, erasures=self.head.erasures + 1)
        self.pending = self.pending_durable = True

    def rotate(self) -> None:
        """Nothing to do: the database keeps one table of entries."""

    def _check(self) -> None:
        if self.broken is not None:
            raise self._storage._unavailable(self.broken)

    def _relock(self) -> None:
        """Lock the head again after a commit; other writers may have appended meanwhile."""
        self.pending = self.pending_durable = False
        try:
            self.conn = self._storage._connection()
            self.head = lock_head(self.conn)
            if self._storage.watch is not None:
                self._storage.watch.check(self.head)
        except Exception as exc:
            # the lines are committed: the caller must not hear otherwise; later calls raise
            self.broken = exc
            self._storage._abandon()


def _tree_rows(
    size: int, nodes: Sequence[Sequence[bytes]]
) -> tuple[list[int], list[int], list[bytes]]:
    """The (level, index, hash) columns of the tree nodes an append after ``size`` closed."""
    levels: list[int] = []
    indexes: list[int] = []
    hashes: list[bytes] = []
    for level, level_nodes in enumerate(nodes, 1):
        first = size >> level
        levels += [level] * len(level_nodes)
        indexes += range(first, first + len(level_nodes))
        hashes += level_nodes
    return levels, indexes, hashes


def lock_head(conn: Any) -> LogHead:
    """Lock the head row in a new transaction on ``conn`` and read it."""
    row = conn.execute(_LOCK_HEAD).fetchone()
    if row is None:
        raise AuditLogError("the table kzg_log_head has no head row; the log was damaged")
    return _head(row)


def _head(row: Sequence[Any]) -> LogHead:
    size, prev, edge, note, checkpoint_time, erasures = row
    edge = bytes(edge)
    return LogHead(
        size=int(size),
        prev=bytes(prev),
        edge=tuple(edge[i : i + _HASH] for i in range(0, len(edge), _HASH)),
        checkpoint=SignedCheckpoint.parse(note) if note else None,
        checkpoint_time=float(checkpoint_time),
        erasures=int(erasures),
    )
