"""Witnesses for the audit log in PostgreSQL: one process sends, the cosignatures are kept in
the database.

Every process of every host that writes the log holds the same
:class:`~kzai_guard.audit.witnesses.Witnesses` policy, but one process at a time sends: the one
whose session holds the advisory lock :data:`WITNESS_LOCK`. Its feeder thread reads the head
row's newest checkpoint (every ``poll_s``, and at once for the checkpoints it signs itself) and
hands it to the witness threads, which send it with a consistency proof read from the tree rows.
The other processes try for the lock on the same beat, so when the sender stops or dies (its
session ends, and the lock with it) another takes over within ``poll_s``.

Cosignatures go to the table ``kzg_log_cosignatures`` (one row per answer: the checkpoint with
the log's signature and the witness's cosignature line); ``kzai-guard copy`` writes them to the
copy's ``cosigned.checkpoints``, so ``kzai-guard verify URL --witness-key ...`` checks them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.leaf import line_leaf
from kzai_guard.audit.merkle import EMPTY_ROOT, consistency_proof, node_hash
from kzai_guard.audit.pg_adoption import stored_format
from kzai_guard.audit.pg_storage import connect_postgres
from kzai_guard.audit.witnesses import Witnesses

__all__ = ["COSIGNATURES_SCHEMA", "WITNESS_LOCK", "PostgresFeeder", "start_postgres_witnesses"]

_log = logging.getLogger("kzai_guard.audit")

WITNESS_LOCK = 0x6B7A_675F_6C6F_6703
"""The advisory lock held by the session of the process that sends checkpoints."""
COSIGNATURES_SCHEMA = """CREATE TABLE IF NOT EXISTS kzg_log_cosignatures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    size bigint NOT NULL, note text NOT NULL, received_at double precision NOT NULL)"""
"""The table of the witnesses' cosignatures."""


def start_postgres_witnesses(witnesses: Witnesses, url: str, *, poll_s: float = 1.0) -> None:
    """Bind ``witnesses`` to the log in the database at ``url`` and start them."""
    conn = connect_postgres(url, connect_timeout=10, autocommit=True)
    try:
        conn.execute(COSIGNATURES_SCHEMA)
        kept = [
            SignedCheckpoint.parse(str(note))
            for (note,) in conn.execute("SELECT note FROM kzg_log_cosignatures ORDER BY id")
        ]
    finally:
        conn.close()
    feeder = PostgresFeeder(witnesses, url, poll_s)
    witnesses.bind(
        lambda note: _keep(url, note), kept, lambda a, b: _consistency(url, a, b), feeder
    )
    feeder.start()


class PostgresFeeder:
    """The thread that takes the sender's lock when it is free and, while it holds it, hands
    the head row's newest checkpoint to the witness threads."""

    def __init__(self, witnesses: Witnesses, url: str, poll_s: float) -> None:
        self._witnesses = witnesses
        self._url = url
        self._poll_s = poll_s
        self._fresh()

    def _fresh(self) -> None:
        self._conn: Any = None
        self._leading = False
        self._stopping = threading.Event()
        self._offered: str | None = None
        self._thread = threading.Thread(target=self._run, name="kzai-guard-witness-feeder")
        self._thread.daemon = True

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def leading(self) -> bool:
        """Whether this process holds the sender's lock."""
        return self._leading

    def respawn(self) -> None:
        """In a forked child: forget the parent's session (its lock is the parent's)."""
        self._fresh()
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; closing its session frees the lock for another process."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _run(self) -> None:
        pid = os.getpid()
        try:
            while not self._stopping.is_set():
                try:
                    self._step()
                except Exception as exc:  # a lost session: try again on the next beat
                    _log.debug("witness feeder: %s", exc)
                    self._leading = False
                    self._drop()
                self._stopping.wait(self._poll_s)
        finally:
            if os.getpid() == pid:
                self._leading = False
                self._drop()

    def _step(self) -> None:
        if self._conn is None:
            self._conn = connect_postgres(self._url, connect_timeout=10, autocommit=True)
        if not self._leading:
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (WITNESS_LOCK,))
            self._leading = bool(row.fetchone()[0])
        if not self._leading:
            return
        (note,) = self._conn.execute("SELECT checkpoint FROM kzg_log_head WHERE id = 1").fetchone()
        if note and note != self._offered:
            self._witnesses.offer(SignedCheckpoint.parse(str(note)))
            self._offered = note

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _keep(url: str, note: SignedCheckpoint) -> None:
    conn = connect_postgres(url, connect_timeout=10, autocommit=True)
    try:
        conn.execute(
            "INSERT INTO kzg_log_cosignatures (size, note, received_at) VALUES (%s, %s, %s)",
            (note.checkpoint.size, note.note(), time.time()),
        )
    finally:
        conn.close()


def _consistency(url: str, old: int, new: int) -> Sequence[bytes]:
    """The consistency proof between two sizes, from the tree rows and the lines."""
    conn = connect_postgres(url, connect_timeout=10)
    try:
        log_format = stored_format(conn)
        return consistency_proof(old, new, lambda a, b: _subtree(conn, a, b, log_format))
    finally:
        conn.close()


def _subtree(conn: Any, start: int, end: int, log_format: int) -> bytes:
    """``MTH(D[start:end])`` for a range aligned to its largest piece (as proofs ask)."""
    if end <= start:
        return EMPTY_ROOT
    pieces: list[bytes] = []
    pos, remaining = start, end - start
    for level in range(remaining.bit_length() - 1, -1, -1):
        if remaining >> level & 1:
            if pos % (1 << level):
                raise ValueError(f"range [{start}, {end}) is not aligned")
            pieces.append(_node(conn, level, pos >> level, log_format))
            pos += 1 << level
    root = pieces[-1]
    for h in reversed(pieces[:-1]):
        root = node_hash(h, root)
    return root


def _node(conn: Any, level: int, index: int, log_format: int) -> bytes:
    if level == 0:
        row = conn.execute("SELECT line FROM kzg_log_entries WHERE seq = %s", (index,)).fetchone()
        if row is None:
            raise ValueError(f"the log has no entry {index}")
        return line_leaf(log_format, bytes(row[0]))
    row = conn.execute(
        "SELECT hash FROM kzg_log_tree WHERE level = %s AND index = %s", (level, index)
    ).fetchone()
    if row is None:
        raise ValueError(f"the log has no tree node ({level}, {index})")
    return bytes(row[0])
