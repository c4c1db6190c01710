"""Copying an audit log out of PostgreSQL into the file layout, for an auditor and the file tools.

:func:`copy_log` reads the log in one ``REPEATABLE READ`` snapshot (a consistent head, entries
and checkpoints while writers go on appending) and writes what an audit directory holds
(:mod:`kzai_guard.audit.segments`): ``origin``, ``format``, the lines in segments of at most
``segment_max_bytes``, each checkpoint in the ``.checkpoints`` file of the segment that holds
its last record, the witnesses' cosignatures in ``cosigned.checkpoints``, and the tree's
hash files (recomputed from the lines, not copied). The subject
keys stay in the database: sealed personal fields stay sealed in the copy.

The directory and its files are private (0700, 0600): the lines carry sealed personal data
and pseudonymous identifiers.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kzai_guard.audit.leaf import line_leaf
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.pg_adoption import stored_format
from kzai_guard.audit.pg_storage import connect_postgres
from kzai_guard.audit.segments import FORMAT_FILE, ORIGIN_FILE, Segment, segment_paths
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.audit.witnesses import COSIGNED_FILE
from kzai_guard.errors import AuditLogError

__all__ = ["CopiedLog", "copy_log"]

_SEGMENT_MAX_BYTES = 64 * 1024 * 1024
_FLUSH_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class CopiedLog:
    """What :func:`copy_log` wrote."""

    origin: str
    records: int
    checkpoints: int
    segments: int


def copy_log(
    url: str, directory: str | os.PathLike[str], *, segment_max_bytes: int = _SEGMENT_MAX_BYTES
) -> CopiedLog:
    """Copy the log in the PostgreSQL database at ``url`` into ``directory`` (new or empty).

    >>> copy_log("postgresql://db/app", "/srv/audit-copy")  # doctest: +SKIP
    CopiedLog(origin='...', records=120000, checkpoints=12, segments=1)

    Raises :class:`~kzai_guard.errors.AuditLogError` if the database holds no log, its entries
    have a gap, or ``directory`` is not empty.
    """
    import psycopg

    path = Path(directory)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise AuditLogError(f"{path} is not an empty directory; copy into a new one")
    try:
        conn = connect_postgres(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise AuditLogError(f"cannot read the audit log in PostgreSQL: {exc}") from exc
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            return _copy(conn, path, segment_max_bytes)
        except psycopg.Error as exc:
            raise AuditLogError(f"cannot read the audit log in PostgreSQL: {exc}") from exc
    finally:
        conn.close()


def _copy(conn: Any, path: Path, segment_max_bytes: int) -> CopiedLog:
    execute = conn.execute
    if execute("SELECT to_regclass('kzg_log_head') IS NULL").fetchone()[0]:
        raise AuditLogError("the database holds no audit log (no table kzg_log_head)")
    origin, size = execute("SELECT origin, size FROM kzg_log_head WHERE id = 1").fetchone()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    log_format = stored_format(conn)
    _write_private(path / FORMAT_FILE, f"{log_format}\n".encode())
    _write_private(path / ORIGIN_FILE, f"{origin}\n".encode())
    starts: list[int] = []
    tree = CompactRange()
    tree_files = TreeFiles(path, writable=True)
    levels: dict[int, bytearray] = collections.defaultdict(bytearray)
    seg: Segment | None = None
    fd = -1
    seg_bytes = 0
    out = bytearray()
    hashes: list[bytes] = []
    try:
        with conn.cursor() as cur:
            query = (
                "COPY (SELECT seq, line FROM kzg_log_entries WHERE seq < %s ORDER BY seq) "
                "TO STDOUT (FORMAT BINARY)"
            )
            with cur.copy(query, (size,)) as copy:
                copy.set_types(["int8", "bytea"])
                expected = 0
                for seq, line in copy.rows():
                    if seq != expected:
                        raise AuditLogError(
                            f"the entries table has no line for seq {expected} (next: {seq})"
                        )
                    if seg is None:
                        seg = segment_paths(path, seq)
                        starts.append(seq)
                        fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                        seg_bytes = 0
                    line = bytes(line)
                    out += line
                    out += b"\n"
                    seg_bytes += len(line) + 1
                    hashes.append(line_leaf(log_format, line))
                    expected += 1
                    if len(out) >= _FLUSH_BYTES or seg_bytes >= segment_max_bytes:
                        _flush(fd, out, hashes, tree, levels, tree_files)
                    if seg_bytes >= segment_max_bytes:
                        os.fsync(fd)
                        os.close(fd)
                        fd, seg = -1, None
                if expected != size:
                    raise AuditLogError(
                        f"the head says {size} records, the entries hold {expected}"
                    )
        if fd >= 0:
            _flush(fd, out, hashes, tree, levels, tree_files)
            os.fsync(fd)
    finally:
        if fd >= 0:
            os.close(fd)
        tree_files.sync()
        tree_files.close()
    checkpoints = _copy_checkpoints(execute, path, starts, size)
    _copy_cosignatures(execute, path)
    return CopiedLog(str(origin), int(size), checkpoints, len(starts))


def _flush(
    fd: int,
    out: bytearray,
    hashes: list[bytes],
    tree: CompactRange,
    levels: dict[int, bytearray],
    tree_files: TreeFiles,
) -> None:
    """Write the buffered lines, and the tree nodes their hashes complete."""
    view = memoryview(out)
    while view:
        view = view[os.write(fd, view) :]
    view.release()
    out.clear()
    levels[0] += b"".join(hashes)
    for level, nodes in enumerate(tree.extend(hashes), 1):
        levels[level] += b"".join(nodes)
    hashes.clear()
    tree_files.append(levels)
    for buf in levels.values():
        buf.clear()


def _copy_checkpoints(execute: Any, path: Path, starts: list[int], size: int) -> int:
    """Write each checkpoint into the segment holding its last record; returns how many.

    A checkpoint for more records than the log holds (its records were deleted, the head row
    moved back) goes into a checkpoint file of its own whose segment does not exist, as the
    file log's would stay after its segment was removed, so that verify reports it. The head
    row's checkpoint is copied too, should its row be gone."""
    rows = execute(
        "SELECT size, note FROM kzg_log_checkpoints WHERE size > 0 ORDER BY id"
    ).fetchall()
    head = execute("SELECT checkpoint FROM kzg_log_head WHERE id = 1").fetchone()
    texts = [str(note) for _, note in rows]
    if head is not None and head[0] and head[0] not in texts:
        rows.append((_note_size(head[0]), head[0]))
    notes: dict[int, list[str]] = collections.defaultdict(list)
    for cp_size, note in rows:
        if cp_size <= 0:
            continue
        if cp_size > size:
            notes[size].append(note)
            continue
        first = max(s for s in starts if s < cp_size)
        notes[first].append(note)
    for first, texts in notes.items():
        _write_private(
            segment_paths(path, first).checkpoints, "".join(t + "\n" for t in texts).encode()
        )
    return len(rows)


def _copy_cosignatures(execute: Any, path: Path) -> None:
    """Write the witnesses' cosignatures (if the log has any) to ``cosigned.checkpoints``."""
    if execute("SELECT to_regclass('kzg_log_cosignatures') IS NULL").fetchone()[0]:
        return
    rows = execute("SELECT note FROM kzg_log_cosignatures ORDER BY id").fetchall()
    if rows:
        _write_private(path / COSIGNED_FILE, "".join(f"{n}\n" for (n,) in rows).encode())


def _note_size(note: str) -> int:
    """The size line of a checkpoint note (0 if it is malformed: verify reports the note)."""
    lines = note.split("\n")
    try:
        return int(lines[1])
    except (IndexError, ValueError):
        return 0


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
