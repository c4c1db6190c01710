"""Showing and moving aside what no writer of the PostgreSQL log explains.

The counterpart of :mod:`kzai_guard.audit.quarantine` for a log in PostgreSQL. When an open
refuses the tables (:mod:`kzai_guard.audit.pg_adoption`), :func:`survey_postgres` reads every
entry (checking the chain as it goes), every checkpoint and the writing mark, and says what
differs and how much of the log is still confirmed: ``keep``, the size of the newest checkpoint
signed by a trusted key that matches the entries as they are now. :func:`quarantine_postgres`
then moves every entry from ``keep`` on, the checkpoints beyond it and the writing mark into the
table ``kzg_log_quarantine`` (with the time and the reason), rebuilds the tree rows and the head
row for the first ``keep`` records, and commits it all in one transaction. Nothing is deleted:
every row moved can be read back from the quarantine table.
"""

from __future__ import annotations

import binascii
import time
from dataclasses import dataclass, field
from typing import Any

from kzai_guard.audit.adoption import judge, parse_tail_mark
from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.leaf import line_leaf
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.pg_adoption import stored_format
from kzai_guard.audit.pg_appending import lock_head
from kzai_guard.audit.segments import LINE_PREFIX
from kzai_guard.audit.storage import EMPTY_PREV

__all__ = ["QUARANTINE_SCHEMA", "PgSurvey", "quarantine_postgres", "survey_postgres"]

QUARANTINE_SCHEMA = """CREATE TABLE IF NOT EXISTS kzg_log_quarantine (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    moved_at double precision NOT NULL, problem text NOT NULL, kind text NOT NULL,
    seq bigint NOT NULL, data bytea NOT NULL)"""
"""The table :func:`quarantine_postgres` moves rows into (kind: entry, checkpoint, head
checkpoint or writing mark; seq: the entry's seq or the checkpoint's size)."""


@dataclass(slots=True)
class PgSurvey:
    """What :func:`survey_postgres` found.

    ``entries`` rows hold ``size`` records that chain from seq 0; ``broken_at`` is the first
    seq that does not continue the chain (``None`` if all do); ``keep`` records are confirmed
    by a trusted checkpoint that matches them (``keep_note``); ``problem`` is what no writer
    explains (``None``: the log opens as it is).
    """

    where: str
    entries: int = 0
    size: int = 0
    broken_at: int | None = None
    keep: int = 0
    keep_note: SignedCheckpoint | None = None
    problem: str | None = None
    checkpoints_beyond: list[int] = field(default_factory=list)
    last_seq: int = -1
    """The highest seq of the entries."""

    def report(self) -> str:
        """A human-readable account."""
        out = [
            f"audit log {self.where}: {self.entries} entries, {self.size} chained from seq 0, "
            f"{self.keep} confirmed by a trusted checkpoint"
        ]
        if self.problem is None:
            out.append("nothing unexplained: the log opens as it is")
            return "\n".join(out)
        out.append(f"unexplained: {self.problem}")
        if self.last_seq >= self.keep:
            out.append(f"the quarantine would move records {self.keep}..{self.last_seq} aside")
        for size in self.checkpoints_beyond:
            out.append(f"the quarantine would move the checkpoint of size {size} aside")
        return "\n".join(out)


def survey_postgres(conn: Any, where: str, keyring: Keyring, *, tail_limit: int) -> PgSurvey:
    """Read the whole log on ``conn`` and judge it as an opening writer would, hashing every
    line (``tail_limit`` is the writers' ``checkpoint_every``)."""
    found = PgSurvey(where)
    log_format = stored_format(conn)
    origin, size, prev_head, edge, head_note = conn.execute(
        "SELECT origin, size, prev, edge, checkpoint FROM kzg_log_head WHERE id = 1"
    ).fetchone()
    notes: list[SignedCheckpoint] = []
    for (text,) in conn.execute("SELECT note FROM kzg_log_checkpoints ORDER BY id"):
        try:
            notes.append(SignedCheckpoint.parse(text))
        except ValueError:
            found.problem = "the checkpoints table holds a malformed note"
    if head_note:
        notes.append(SignedCheckpoint.parse(head_note))
    row = conn.execute("SELECT mark FROM kzg_log_writing WHERE id = 1").fetchone()
    mark = parse_tail_mark(bytes(row[0])) if row is not None else None
    wanted = {n.checkpoint.size for n in notes} | ({mark.checkpoint.size} if mark else set())
    tree = CompactRange()
    roots: dict[int, bytes] = {0: tree.root()}
    prev = EMPTY_PREV
    with conn.cursor() as cur:
        query = (
            "COPY (SELECT seq, line FROM kzg_log_entries ORDER BY seq) TO STDOUT (FORMAT BINARY)"
        )
        with cur.copy(query) as copy:
            copy.set_types(["int8", "bytea"])
            for seq, raw in copy.rows():
                found.entries += 1
                found.last_seq = max(found.last_seq, seq)
                if found.broken_at is not None:
                    continue
                line = bytes(raw)
                if seq != tree.size or not (
                    line.startswith(LINE_PREFIX + binascii.hexlify(prev))
                    and line.endswith(b',"seq":%d}' % seq)
                ):
                    found.broken_at = tree.size
                    continue
                prev = line_leaf(log_format, line)
                tree.append(prev)
                if tree.size in wanted:
                    roots[tree.size] = tree.root()
    found.size = tree.size
    roots[tree.size] = tree.root()
    confirmed = [
        n
        for n in notes
        if roots.get(n.checkpoint.size) == n.checkpoint.root
        and n.checkpoint.origin == origin
        and n.status(keyring) is CheckpointStatus.VALID
    ]
    if confirmed:
        found.keep_note = max(confirmed, key=lambda n: n.checkpoint.size)
        found.keep = found.keep_note.checkpoint.size
    found.checkpoints_beyond = sorted(
        {n.checkpoint.size for n in notes} - {0} - set(range(found.keep + 1))
    )
    if found.problem is not None:
        return found
    if found.broken_at is not None:
        found.problem = f"the line for seq {found.broken_at} does not continue the chain"
        return found
    judged = judge(
        notes,
        mark,
        keyring,
        origin=str(origin),
        size=tree.size,
        active_first=0,
        root_at=lambda n: roots.get(n, b""),
        tail_limit=tail_limit,
    )
    found.problem = judged.problem
    if found.problem is None and (
        size != tree.size or bytes(prev_head) != prev or bytes(edge) != b"".join(tree.hashes)
    ):
        found.problem = "the head row does not match the records: it was rewritten"
    if found.problem is None:
        found.keep = tree.size
        found.checkpoints_beyond = []
    return found


def quarantine_postgres(conn: Any, where: str, keyring: Keyring, *, tail_limit: int) -> PgSurvey:
    """Survey the log with its head row locked and, if something is unexplained, move it into
    ``kzg_log_quarantine`` and set the head back to ``keep`` records, in one transaction."""
    lock_head(conn)
    found = survey_postgres(conn, where, keyring, tail_limit=tail_limit)
    if found.problem is None:
        conn.rollback()
        return found
    keep, now, why = found.keep, time.time(), found.problem
    conn.execute(QUARANTINE_SCHEMA)
    move = "INSERT INTO kzg_log_quarantine (moved_at, problem, kind, seq, data) "
    conn.execute(
        move + "SELECT %s, %s, 'entry', seq, line FROM kzg_log_entries WHERE seq >= %s",
        (now, why, keep),
    )
    conn.execute("DELETE FROM kzg_log_entries WHERE seq >= %s", (keep,))
    conn.execute(
        move + "SELECT %s, %s, 'checkpoint', size, convert_to(note, 'UTF8') "
        "FROM kzg_log_checkpoints WHERE size > %s",
        (now, why, keep),
    )
    conn.execute("DELETE FROM kzg_log_checkpoints WHERE size > %s", (keep,))
    conn.execute(
        move + "SELECT %s, %s, 'head checkpoint', 0, convert_to(checkpoint, 'UTF8') "
        "FROM kzg_log_head WHERE checkpoint IS NOT NULL",
        (now, why),
    )
    conn.execute(move + "SELECT %s, %s, 'writing mark', 0, mark FROM kzg_log_writing", (now, why))
    conn.execute("DELETE FROM kzg_log_writing")
    # the tree rows and the head, from the kept lines: whatever the tables held before
    tree = CompactRange()
    nodes: list[tuple[int, int, bytes]] = []

    prev = EMPTY_PREV
    log_format = stored_format(conn)
    rows = conn.execute(
        "SELECT line FROM kzg_log_entries WHERE seq < %s ORDER BY seq", (keep,)
    ).fetchall()
    for seq, (raw,) in enumerate(rows):
        prev = line_leaf(log_format, bytes(raw))
        # the subtree of 2**level leaves closed by leaf ``seq`` is number seq >> level
        for level, closed in enumerate(tree.extend([prev]), 1):
            nodes += [(level, seq >> level, value) for value in closed]
    conn.execute("DELETE FROM kzg_log_tree")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO kzg_log_tree (level, index, hash) VALUES (%s, %s, %s)", nodes)
    note = found.keep_note.note() if found.keep_note is not None else None
    conn.execute(
        "UPDATE kzg_log_head SET size = %s, prev = %s, edge = %s, checkpoint = %s, "
        "checkpoint_time = 0 WHERE id = 1",
        (keep, prev, b"".join(tree.hashes), note),
    )
    conn.commit()
    return found
