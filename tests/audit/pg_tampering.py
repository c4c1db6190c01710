"""What an insider with SQL access to the log's database, but not the signing key, can do.

Each function changes the tables as an attacker would with ``psql`` and a few lines of Python:
rewrite entries and rebuild everything derived from them (the chain, the tree rows, the head
row), delete checkpoint rows. Nothing here uses a signing key.
"""

from __future__ import annotations

import hashlib

import orjson
import psycopg

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.segments import GENESIS

LOG_FORMAT = 2
"""The format of the logs these tests attack (made now); the attacker reads it from the head
row as easily."""


def pg_lines(url: str) -> list[bytes]:
    """Every entry's line, in seq order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT line FROM kzg_log_entries ORDER BY seq").fetchall()
    return [bytes(r[0]) for r in rows]


def store_lines(url: str, lines: list[bytes], *, first: int = 0) -> None:
    """Replace the entries with ``lines`` (seq ``first`` on) and rebuild the tree rows and the
    head row's size, hash and edge from them, as the writers would have left them."""
    tree = CompactRange()
    nodes: list[tuple[int, int, bytes]] = []
    counts: dict[int, int] = {}

    def keep(level: int, node: bytes) -> None:
        index = counts.get(level, 0)
        counts[level] = index + 1
        nodes.append((level, index, node))

    hashes = [bytes.fromhex(_hash(line)) for line in lines]
    for h in hashes:
        tree.append(h, keep)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM kzg_log_entries")
        conn.execute("DELETE FROM kzg_log_tree")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO kzg_log_entries (seq, line) VALUES (%s, %s)",
                [(first + i, line) for i, line in enumerate(lines)],
            )
            cur.executemany(
                "INSERT INTO kzg_log_tree (level, index, hash) VALUES (%s, %s, %s)", nodes
            )
        conn.execute(
            "UPDATE kzg_log_head SET size = %s, prev = %s, edge = %s WHERE id = 1",
            (first + len(lines), hashes[-1] if hashes else bytes(32), b"".join(tree.hashes)),
        )


def edit(lines: list[bytes], seq: int, **fields: object) -> None:
    """Change fields of the record at ``seq`` (the chain after it is left broken)."""
    value = orjson.loads(lines[seq])
    value["rec"].update(fields)
    lines[seq] = canonical_json(value)


def rechain(lines: list[bytes], first: int = 0) -> None:
    """Recompute every ``prev`` and ``seq`` from ``first`` on, so the chain holds again."""
    prev = GENESIS if first == 0 else _hash(lines[first - 1])
    for i in range(first, len(lines)):
        value = orjson.loads(lines[i])
        value["prev"] = prev
        value["seq"] = i
        lines[i] = canonical_json(value)
        prev = _hash(lines[i])


def chained(lines: list[bytes], record: dict[str, object]) -> bytes:
    """A line holding ``record`` that continues the chain after ``lines``."""
    prev = _hash(lines[-1]) if lines else GENESIS
    return canonical_json({"prev": prev, "rec": record, "seq": len(lines)})


def delete_checkpoints(url: str, *, above: int = -1) -> None:
    """Delete the checkpoint rows of sizes above ``above`` (all by default) and, with them,
    the head row's checkpoint (set to the newest that is left)."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM kzg_log_checkpoints WHERE size > %s", (above,))
        row = conn.execute(
            "SELECT note, signed_at FROM kzg_log_checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE kzg_log_head SET checkpoint = %s, checkpoint_time = %s WHERE id = 1",
            (row[0], row[1]) if row is not None else (None, 0.0),
        )


def checkpoint_sizes(url: str) -> list[int]:
    """The sizes of the checkpoint rows, in order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT size FROM kzg_log_checkpoints ORDER BY id").fetchall()
    return [int(r[0]) for r in rows]


def writing_mark(url: str) -> bytes | None:
    """The writing mark row, if any."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT mark FROM kzg_log_writing WHERE id = 1").fetchone()
    return bytes(row[0]) if row is not None else None


def _hash(line: bytes) -> str:
    entry = line if LOG_FORMAT == 1 else hashlib.sha256(line).digest()
    return hashlib.sha256(b"\x00" + entry).hexdigest()
