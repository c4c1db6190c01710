"""Random sequences of tampering with SQL, without the key, never give a PostgreSQL log that
opens and verifies as anything but what was written, except the newest records cut off with
their checkpoints.

Each example copies one closed log (16 records, a checkpoint every 4) into a database of its
own (``CREATE DATABASE ... TEMPLATE``), applies a few operations an insider with SQL access can
do (edit, delete, insert, reorder and truncate entries, with or without rebuilding the chain,
the tree rows and the head row; delete checkpoint rows, the writing mark or tree rows; change
the head row's log format; write checkpoints with a key of the same name), then opens the log
twice (which may refuse) and verifies a copy with the real key. Whenever verify says OK, the
entries must be the first lines that were written, byte for byte. Few examples: each one makes
a database.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.checkpoint import Checkpoint
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.merkle import CompactRange, leaf_hash
from kzai_guard.audit.pg_copy import copy_log
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditLogError, AuditUnavailable

from ..postgres import PG_ADMIN_URL, fresh_database
from .conftest import make_record
from .pg_tampering import chained, delete_checkpoints, edit, pg_lines, rechain, store_lines

SIGNER = Signer.generate("test-key")
STRANGER = Signer.generate("test-key")
KEYRING = Keyring([SIGNER.public_key])
OPTIONS: dict[str, Any] = {
    "checkpoint_every": 4,
    "durability": "sync",
    "seal_personal_fields": False,
}
N = 16

INDEX = st.integers(0, N + 2)
VERDICT = st.sampled_from(["allow", "block", "route"])
OPERATIONS = st.one_of(
    st.tuples(st.just("edit"), INDEX, VERDICT),
    st.tuples(st.just("edit-rebuild"), INDEX, VERDICT),
    st.tuples(st.just("delete-rebuild"), INDEX),
    st.tuples(st.just("insert-rebuild"), INDEX),
    st.tuples(st.just("swap-rebuild"), INDEX, INDEX),
    st.tuples(st.just("truncate"), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("delete-oldest"), st.integers(1, 6)),
    st.tuples(st.just("delete-row"), INDEX),
    st.tuples(st.just("delete-checkpoints"), st.integers(-1, N)),
    st.tuples(st.just("delete"), st.sampled_from(["mark", "tree", "head-checkpoint"])),
    st.tuples(st.just("resign"), st.booleans()),
    st.tuples(st.just("format"), st.sampled_from([1, 3])),
    st.tuples(
        st.just("append"),
    ),
)


@pytest.fixture(scope="module")
def template() -> Iterator[tuple[str, list[bytes]]]:
    """A database holding the closed log, and its lines."""
    with fresh_database() as url:
        log = AuditLog.open(url, signer=SIGNER, **OPTIONS)
        for i in range(N):
            log.write(make_record(i))
        log.close()
        yield url, pg_lines(url)


@contextlib.contextmanager
def _copy_of(url: str) -> Iterator[str]:
    name = f"kzg_test_{uuid.uuid4().hex[:12]}"
    source = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    try:
        yield f"{url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _apply(url: str, op: tuple[Any, ...]) -> None:
    kind = op[0]
    lines = pg_lines(url)
    if kind.startswith(("edit", "delete-rebuild", "swap")) and not lines:
        return
    if kind == "edit":  # the row only: chain, tree and head left as they were
        seq = op[1] % len(lines)
        edit(lines, seq, verdict=op[2])
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE kzg_log_entries SET line = %s WHERE seq = %s", (lines[seq], seq))
    elif kind == "edit-rebuild":
        seq = op[1] % len(lines)
        edit(lines, seq, verdict=op[2])
        rechain(lines, seq)
        store_lines(url, lines)
    elif kind == "delete-rebuild":
        seq = op[1] % len(lines)
        del lines[seq]
        rechain(lines, min(seq, max(len(lines) - 1, 0)))
        store_lines(url, lines)
    elif kind == "insert-rebuild":
        seq = op[1] % (len(lines) + 1)
        rec = make_record(1000 + seq, kind="review.completed", verdict="allow").as_dict()
        lines.insert(seq, canonical_json({"prev": "0" * 64, "rec": rec, "seq": seq}))
        rechain(lines, seq)
        store_lines(url, lines)
    elif kind == "swap-rebuild":
        a, b = op[1] % len(lines), op[2] % len(lines)
        lines[a], lines[b] = lines[b], lines[a]
        rechain(lines, min(a, b))
        store_lines(url, lines)
    elif kind == "truncate":
        keep = max(0, len(lines) - op[1])
        store_lines(url, lines[:keep])
        if op[2]:  # and the checkpoints beyond
            delete_checkpoints(url, above=keep)
    elif kind == "delete-oldest":
        with psycopg.connect(url) as conn:
            conn.execute("DELETE FROM kzg_log_entries WHERE seq < %s", (op[1],))
    elif kind == "delete-row":  # the row only: tree and head left as they were
        with psycopg.connect(url) as conn:
            conn.execute("DELETE FROM kzg_log_entries WHERE seq = %s", (op[1],))
    elif kind == "delete-checkpoints":
        delete_checkpoints(url, above=op[1])
    elif kind == "format":  # the head row's log format (the log was made in format 2)
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE kzg_log_head SET format = %s", (op[1],))
    elif kind == "delete":
        table = {
            "mark": "DELETE FROM kzg_log_writing",
            "tree": "DELETE FROM kzg_log_tree",
            "head-checkpoint": "UPDATE kzg_log_head SET checkpoint = NULL",
        }[op[1]]
        with psycopg.connect(url) as conn:
            conn.execute(table)
    elif kind == "resign":
        tree = CompactRange()
        for line in lines:
            tree.append(leaf_hash(line))
        with psycopg.connect(url) as conn:
            origin = conn.execute("SELECT origin FROM kzg_log_head").fetchone()[0]
            note = Checkpoint(origin, tree.size, tree.root()).sign([STRANGER]).note()
            conn.execute(
                "INSERT INTO kzg_log_checkpoints (size, note, signed_at) VALUES (%s, %s, 0)",
                (tree.size, note),
            )
            if op[1]:
                conn.execute("UPDATE kzg_log_head SET checkpoint = %s", (note,))
    elif kind == "append":
        forged = make_record(999, kind="review.completed", verdict="allow").as_dict()
        store_lines(url, [*lines, chained(lines, forged)])


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=4))
def test_tampering_never_opens_and_verifies_as_anything_but_a_prefix(
    template: tuple[str, list[bytes]],
    tmp_path_factory: pytest.TempPathFactory,
    operations: list[tuple[Any, ...]],
) -> None:
    source, original = template
    with _copy_of(source) as url:
        for op in operations:
            # the attacker's own tools may fail on the damage already done
            with contextlib.suppress(psycopg.Error, IndexError, ValueError, orjson.JSONDecodeError):
                _apply(url, op)
        for _ in range(2):  # before and after a restart
            with contextlib.suppress(AuditLogError, AuditUnavailable):
                AuditLog.open(url, signer=SIGNER, **OPTIONS).close()
            copy = tmp_path_factory.mktemp("copy") / "log"
            try:
                copy_log(url, copy)
            except AuditLogError:
                continue  # a gap in the entries: no copy, no OK verify
            if verify_log(copy, KEYRING).ok:
                lines = pg_lines(url)
                assert lines == original[: len(lines)], operations


def test_the_template_verifies(template: tuple[str, list[bytes]], tmp_path: Path) -> None:
    source, original = template
    copy_log(source, tmp_path / "log")
    report = verify_log(tmp_path / "log", KEYRING)
    assert (report.ok, report.records) == (True, len(original))
