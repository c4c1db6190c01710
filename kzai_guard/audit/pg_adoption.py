"""What a writer of the PostgreSQL log may adopt: the rules of :mod:`kzai_guard.audit.adoption`
over the log's tables.

Whoever can write the database, without the signing key, can rewrite entries, rebuild the chain,
the tree and the head row, and delete checkpoint rows. So a writer judges the tables before it
signs over them: when it opens the log (:func:`judge_postgres`, under the head lock) and, more
cheaply, each time it takes the head row another writer left (:class:`HeadWatch`).

At open:

- **The rows span the head.** The entries run from seq 0 to ``size - 1`` of the head row (a
  deleted oldest or newest entry, or a row beyond the head, refuses; a row deleted in the
  middle is left to verify, see below).
- **The signed prefix.** The newest checkpoint (of every row of ``kzg_log_checkpoints`` and the
  head's) must be signed by a trusted key, name the log's origin, cover no more records than the
  entries hold, and have the root of the tree the log holds at its size (the tree nodes of
  ``kzg_log_tree``, the last leaf from its line). A rebuilt tree, a deleted or forged checkpoint
  fails this.
- **The unsigned tail**, entries after that checkpoint, is adopted only as a writer leaves it: at
  most ``tail_limit`` (``checkpoint_every``) records, chained from the signed prefix, ending at
  the head row's hash and tree edge, and only while a *writing mark* is kept (table
  ``kzg_log_writing``): a writer that opens the log signs "a writer appends after this
  checkpoint", and the last writer to close cleanly, every record covered, deletes it. Writers
  hold a shared advisory lock (:data:`WRITERS_LOCK`) on their sessions, so a closing writer
  knows whether it is the last. Records appended while the service is stopped are refused.

The writer then signs only checkpoints that extend the signed tree: a line rewritten or deleted
below the newest checkpoint, with the tree rows left as they were, is not read at open (that
would read the whole log at every start: an open costs the same at any log length), but no new
checkpoint vouches for it, and ``kzai-guard verify`` (which hashes every line) reports it;
``kzai-guard repair URL --show`` reads every line too.

While writers run, each one checks the head row it takes (:class:`HeadWatch`): the log never
shrinks and the checkpoint never goes back; otherwise the writer stops writing (the log turns
unhealthy) and says why.
"""

from __future__ import annotations

import binascii
from typing import Any

from kzai_guard.audit.adoption import Adoption, judge, parse_tail_mark
from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.leaf import LINES, check_format, line_leaf
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.segments import LINE_PREFIX
from kzai_guard.audit.storage import EMPTY_PREV, LogHead
from kzai_guard.errors import AuditLogError

__all__ = [
    "MARK_SCHEMA",
    "WRITERS_LOCK",
    "HeadWatch",
    "judge_postgres",
    "range_at",
    "stored_format",
    "refuse",
]

WRITERS_LOCK = 0x6B7A_675F_6C6F_6702
"""The advisory lock every writer's session holds shared while the log is open."""
MARK_SCHEMA = """CREATE TABLE IF NOT EXISTS kzg_log_writing (
    id smallint PRIMARY KEY CHECK (id = 1), mark bytea NOT NULL)"""
"""The table of the writing mark (one row while writers run or after one was killed)."""
_HINT = "run `kzai-guard repair {where} --show` to see what differs"


def judge_postgres(
    conn: Any, head: LogHead, keyring: Keyring, *, origin: str, tail_limit: int
) -> Adoption:
    """Judge the log's tables, read on ``conn`` (whose transaction holds the head row
    ``head`` locked), by the rules above."""
    size = head.size
    log_format = stored_format(conn)
    # the ends only (two index lookups): a row deleted in the middle is found by verify, and
    # no checkpoint vouches for it, since the writer extends the signed tree
    low, high = conn.execute("SELECT min(seq), max(seq) FROM kzg_log_entries").fetchone()
    if (low, high) != ((0, size - 1) if size else (None, None)):
        span = f"seq {low}..{high}" if high is not None else "no entries"
        return Adoption(
            size,
            0,
            None,
            f"the head row counts {size} records but the entries table holds {span}: "
            "records were removed or added",
        )
    notes: list[SignedCheckpoint] = []
    for (text,) in conn.execute("SELECT note FROM kzg_log_checkpoints ORDER BY id"):
        try:
            notes.append(SignedCheckpoint.parse(text))
        except ValueError:
            return Adoption(size, 0, None, "the checkpoints table holds a malformed note")
    if head.checkpoint is not None:
        if head.checkpoint.status(keyring) is not CheckpointStatus.VALID:
            return Adoption(
                size,
                0,
                None,
                f"the head row's checkpoint (size {head.checkpoint_size}) is not signed by a "
                "trusted key",
            )
        notes.append(head.checkpoint)
    row = conn.execute("SELECT mark FROM kzg_log_writing WHERE id = 1").fetchone()
    mark = parse_tail_mark(bytes(row[0])) if row is not None else None

    def root_at(n: int) -> bytes:
        return range_at(conn, n, log_format).root()

    found = judge(
        notes,
        mark,
        keyring,
        origin=origin,
        size=size,
        active_first=0,
        root_at=root_at,
        tail_limit=tail_limit,
    )
    if found.problem is not None:
        return found
    problem = _tail_problem(conn, head, found.signed_size, log_format)
    if problem is not None:
        return Adoption(size, found.signed_size, found.checkpoint, problem)
    return found


def stored_format(conn: Any) -> int:
    """The log's format (:mod:`kzai_guard.audit.leaf`) from its head row: 1 for tables made
    before the ``format`` column (read through ``to_jsonb``, which a missing column does not
    fail)."""
    row = conn.execute(
        "SELECT to_jsonb(h) ->> 'format' FROM kzg_log_head h WHERE id = 1"
    ).fetchone()
    if row is None or row[0] is None:
        return LINES
    try:
        return check_format(int(row[0]))
    except ValueError as exc:
        raise AuditLogError(f"the audit log's head row: {exc}") from None


def range_at(conn: Any, size: int, log_format: int) -> CompactRange:
    """The tree's right edge at ``size`` as the log holds it: the nodes of ``kzg_log_tree``
    and, for an odd size, the leaf hash (in ``log_format``) of the last line."""
    levels = [lv for lv in range(size.bit_length() - 1, -1, -1) if size >> lv & 1]
    wanted = [(lv, (size >> lv) - 1) for lv in levels if lv > 0]
    nodes: dict[tuple[int, int], bytes] = {}
    if wanted:
        rows = conn.execute(
            "SELECT level, index, hash FROM kzg_log_tree "
            "WHERE (level, index) IN (SELECT * FROM unnest(%s::int2[], %s::int8[]))",
            ([lv for lv, _ in wanted], [ix for _, ix in wanted]),
        ).fetchall()
        nodes = {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}
    hashes: list[bytes] = []
    for lv in levels:
        if lv == 0:
            line = _line(conn, size - 1)
            hashes.append(line_leaf(log_format, line) if line is not None else b"")
        else:
            hashes.append(nodes.get((lv, (size >> lv) - 1), b""))
    return CompactRange(size, hashes)


def refuse(found: Adoption, where: str) -> None:
    """Raise :class:`~kzai_guard.errors.AuditLogError` unless ``found`` is sound."""
    if found.problem is not None:
        raise AuditLogError(
            f"the audit log at {where} holds what no writer of it can vouch for: "
            f"{found.problem}. It is not opened, so that nothing is signed over it; "
            + _HINT.format(where=where)
        )


class HeadWatch:
    """What a running writer checks of each head row it takes: the log only grows and its
    newest checkpoint never goes back.

    The signature of a newer checkpoint is not checked here: another process may sign with a
    key it rotated to (``rotate_key``), and a writer signs the root of the tree it extends,
    never the head row's checkpoint, so a forged one there makes it sign nothing false (the
    next open refuses it).
    """

    def __init__(self) -> None:
        self._size = 0
        self._signed = 0

    def check(self, head: LogHead) -> None:
        """Raise :class:`~kzai_guard.errors.AuditLogError` if ``head`` went back."""
        if head.size < self._size or head.checkpoint_size < self._signed:
            raise AuditLogError(
                f"the log's head went back from {self._size} records (signed up to "
                f"{self._signed}) to {head.size} (signed up to {head.checkpoint_size}): records "
                "or checkpoints were removed; the writer stops"
            )
        self._size = head.size
        self._signed = head.checkpoint_size


def _tail_problem(conn: Any, head: LogHead, signed: int, log_format: int) -> str | None:
    """Whether the entries after ``signed`` chain from it and end at the head row's hash and
    edge (what every writer leaves); ``None`` if they do."""
    size = head.size
    tree = range_at(conn, signed, log_format)
    before = _line(conn, signed - 1) if signed else None
    prev = line_leaf(log_format, before) if before is not None else EMPTY_PREV
    rows = conn.execute(
        "SELECT seq, line FROM kzg_log_entries WHERE seq >= %s ORDER BY seq", (signed,)
    ).fetchall()
    for seq, raw in rows:
        line = bytes(raw)
        if not (
            line.startswith(LINE_PREFIX + binascii.hexlify(prev))
            and line.endswith(b',"seq":%d}' % seq)
        ):
            return f"the line for seq {seq} does not continue the chain"
        prev = line_leaf(log_format, line)
        tree.append(prev)
    if prev != head.prev or tuple(tree.hashes) != head.edge or tree.size != size:
        return "the head row does not match the records: it was rewritten"
    return None


def _line(conn: Any, seq: int) -> bytes | None:
    row = conn.execute("SELECT line FROM kzg_log_entries WHERE seq = %s", (seq,)).fetchone()
    return bytes(row[0]) if row is not None else None
