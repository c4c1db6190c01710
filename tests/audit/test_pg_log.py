"""The audit log in PostgreSQL: sequencing across processes, start-up races, broken connections.

Every module gets its own database with a random name (people run the suite at the same time).
The writer here is :func:`tests.audit.pg.append_batch`: one batch as the log's writer does it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring, Signer, write_keypair
from kzai_guard.audit.lines import LineEncoder
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.pg_copy import copy_log
from kzai_guard.audit.pg_storage import PostgresLogStorage
from kzai_guard.audit.segments import list_segments, parse_line
from kzai_guard.audit.storage import next_edge
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditUnavailable, ConfigurationError

from .conftest import make_record
from .pg import PG_ADMIN_URL, append_batch, private_database
from .tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
KZAI_GUARD = [sys.executable, "-m", "kzai_guard.cli"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty database for one test."""
    yield from private_database()


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Path, Signer]:
    """A checkpoint key on disk: (private key file, public key file, signer)."""
    private, public, signer = write_keypair(tmp_path / "keys", "pg-test")
    return private, public, signer


def _run(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _log_ids(url: str) -> list[str]:
    """The record ids of the log's lines, in seq order (checking the seqs on the way)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT seq, line FROM kzg_log_entries ORDER BY seq").fetchall()
    assert [seq for seq, _ in rows] == list(range(len(rows)))
    return [parse_line(bytes(line))["rec"]["id"] for _, line in rows]


# ---------------------------------------------------------------------------- the tree's edge


@given(st.integers(0, 300), st.lists(st.integers(1, 70), max_size=6))
def test_next_edge_after_an_append_is_the_compact_range_of_the_longer_tree(
    size: int, batches: list[int]
) -> None:
    tree = CompactRange()
    tree.extend([bytes([i % 256]) * 32 for i in range(size)])
    edge = tuple(tree.hashes)
    for count in batches:
        leaves = [bytes([(tree.size + i) % 251]) * 32 for i in range(count)]
        before = tree.size
        nodes = tree.extend(leaves)
        edge = next_edge(before, edge, leaves, nodes)
        assert list(edge) == tree.hashes


# ---------------------------------------------------------------------------- many writers

WRITERS_ORIGIN = "pg-writers.example.kz/audit"
_WRITER = """
import sys
from pathlib import Path
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.lines import LineEncoder
from kzai_guard.audit.pg_storage import PostgresLogStorage
from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys
from kzai_guard.audit.shredding import Sealer
from tests.audit.conftest import make_record
from tests.audit.pg import append_batch

url, key, writer, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
storage = PostgresLogStorage(url, origin="pg-writers.example.kz/audit")
keys = PostgresSubjectKeys(url)
encoder = LineEncoder(Sealer(keys))
signer = Signer.from_file(Path(key))
for b in range(batches):
    records = [
        make_record(i, id=f"w{writer}-{b}-{i}", subject=f"p:{i % 5}") for i in range(40)
    ]
    append_batch(storage, encoder, records, signer if b % 4 == 3 else None)
    print(*(r.id for r in records), flush=True)
storage.close()
keys.close()
"""


def test_writer_processes_append_one_chain_that_verifies_copied_and_by_url(
    pg_url: str, key: tuple[Path, Path, Signer], tmp_path: Path
) -> None:
    private, public, _ = key
    writers = [_run(_WRITER, pg_url, str(private), str(w), "12") for w in range(4)]
    acknowledged: list[str] = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        acknowledged += out.split()
    ids = _log_ids(pg_url)
    assert len(acknowledged) == 4 * 12 * 40
    assert Counter(ids) == Counter(acknowledged)  # every acknowledged record once, no other

    copied = copy_log(pg_url, tmp_path / "copy")
    assert copied.records == len(ids)
    verify = [*KZAI_GUARD, "verify", "--public-key", str(public), "--origin", WRITERS_ORIGIN]
    by_dir = subprocess.run([*verify, str(tmp_path / "copy")], capture_output=True, text=True)
    assert by_dir.returncode == 0, by_dir.stdout + by_dir.stderr
    by_url = subprocess.run([*verify, pg_url], capture_output=True, text=True)
    assert by_url.returncode == 0, by_url.stdout + by_url.stderr
    assert f"OK: {len(ids)} records" in by_url.stdout


_OPENER = """
import sys, time
from kzai_guard.audit.pg_storage import PostgresLogStorage
from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
storage = PostgresLogStorage(sys.argv[1])
keys = PostgresSubjectKeys(sys.argv[1])
print(storage.origin)
storage.close()
keys.close()
"""


def test_eight_processes_opening_an_empty_database_at_once_all_start(pg_url: str) -> None:
    import time

    # all eight wait for the same moment, after their imports, to open the log
    start = str(time.time() + 3.0)
    openers = [_run(_OPENER, pg_url, start) for _ in range(8)]
    origins = set()
    for opener in openers:
        out, err = opener.communicate(timeout=60)
        assert opener.returncode == 0, err
        origins.add(out.strip())
    assert len(origins) == 1


def test_an_origin_other_than_the_databases_is_refused(pg_url: str) -> None:
    PostgresLogStorage(pg_url, origin="example.kz/audit").close()
    with pytest.raises(ConfigurationError, match=r"has origin 'example\.kz/audit'"):
        PostgresLogStorage(pg_url, origin="example.kz/other")


# ---------------------------------------------------------------------------- broken connections


def _batch(storage: PostgresLogStorage, tag: str, count: int = 25) -> list[str]:
    records = [make_record(i, id=f"{tag}-{i}") for i in range(count)]
    append_batch(storage, LineEncoder(None), records)
    return [r.id for r in records]


def test_a_batch_after_the_backend_was_terminated_runs_on_a_new_connection(pg_url: str) -> None:
    storage = PostgresLogStorage(pg_url)
    written = _batch(storage, "before")
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    written += _batch(storage, "after")
    storage.close()
    assert _log_ids(pg_url) == written


@pytest.fixture
def proxy(pg_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A TCP proxy in front of PostgreSQL, and the database's URL through it."""
    with TcpProxy(("127.0.0.1", 5432)) as running:
        name = pg_url.rsplit("/", 1)[1]
        yield running, f"postgresql://127.0.0.1:{running.port}/{name}"


def test_a_commit_cut_after_it_reached_the_server_is_reported_written_once(
    pg_url: str, proxy: tuple[TcpProxy, str]
) -> None:
    running, url = proxy
    storage = PostgresLogStorage(url)
    written = _batch(storage, "first")
    running.cut_at(b"COMMIT", forward=True)
    written += _batch(storage, "in-doubt")  # the answer was lost, the commit was not
    written += _batch(storage, "next")
    storage.close()
    assert running.cuts == 1
    assert _log_ids(pg_url) == written


def test_a_commit_cut_before_it_reached_the_server_is_reported_failed_and_not_stored(
    pg_url: str, proxy: tuple[TcpProxy, str]
) -> None:
    running, url = proxy
    storage = PostgresLogStorage(url)
    written = _batch(storage, "first")
    running.cut_at(b"COMMIT", forward=False)
    with pytest.raises(AuditUnavailable):
        _batch(storage, "lost")
    written += _batch(storage, "again")
    storage.close()
    assert running.cuts == 1
    assert _log_ids(pg_url) == written


def test_while_the_database_is_unreachable_batches_fail_and_then_the_writer_recovers(
    pg_url: str, proxy: tuple[TcpProxy, str]
) -> None:
    running, url = proxy
    storage = PostgresLogStorage(url)
    written = _batch(storage, "first")
    running.block()
    for attempt in range(2):
        with pytest.raises(AuditUnavailable):
            _batch(storage, f"refused{attempt}")
    running.unblock()
    written += _batch(storage, "back")
    storage.close()
    assert _log_ids(pg_url) == written


def test_after_fork_the_child_writes_on_its_own_connection_and_the_parents_survives(
    pg_url: str,
) -> None:
    storage = PostgresLogStorage(pg_url)
    written = _batch(storage, "parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            storage.after_fork()
            _batch(storage, "child")
            storage.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    written += [f"child-{i}" for i in range(25)]
    written += _batch(storage, "parent-again")  # the inherited connection still works here
    storage.close()
    assert _log_ids(pg_url) == written


def test_copy_refuses_a_directory_that_is_not_empty(pg_url: str, tmp_path: Path) -> None:
    storage = PostgresLogStorage(pg_url)
    _batch(storage, "x")
    storage.close()
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "other").write_text("x")
    result = subprocess.run(
        [*KZAI_GUARD, "copy", pg_url, str(tmp_path / "copy")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "not an empty directory" in result.stderr


def test_copy_writes_private_segments_with_every_checkpoint(
    pg_url: str, key: tuple[Path, Path, Signer], tmp_path: Path
) -> None:
    _, _, signer = key
    storage = PostgresLogStorage(pg_url)
    encoder = LineEncoder(None)
    for b in range(6):
        append_batch(storage, encoder, [make_record(b * 50 + i) for i in range(50)], signer)
    storage.close()
    copied = copy_log(pg_url, tmp_path / "copy", segment_max_bytes=20_000)
    segments = list_segments(tmp_path / "copy")
    assert (copied.records, copied.checkpoints, copied.segments) == (300, 6, len(segments))
    assert len(segments) > 1
    assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o700
    assert {s.path.stat().st_mode & 0o777 for s in segments} == {0o600}
    notes = [n for s in segments if s.checkpoints.exists() for n in read_notes(s.checkpoints)]
    assert [n.checkpoint.size for n in notes if isinstance(n, SignedCheckpoint)] == [
        50,
        100,
        150,
        200,
        250,
        300,
    ]
    assert (tmp_path / "copy" / "origin").read_text() == storage.origin + "\n"


def test_small_and_large_batches_store_every_completed_subtree_and_verify(
    pg_url: str, key: tuple[Path, Path, Signer], tmp_path: Path
) -> None:
    _, public, signer = key
    storage = PostgresLogStorage(pg_url)
    encoder = LineEncoder(None)
    sizes = [3, 300, 1, 517, 20]  # one statement below 256 lines, COPY from 256 on
    done = 0
    for size in sizes:
        append_batch(storage, encoder, [make_record(done + i) for i in range(size)], signer)
        done += size
    storage.close()
    tree = CompactRange()
    expected: list[int] = []
    for _ in range(done):
        tree.append(bytes(32), lambda level, node: expected.append(level))
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute(
            "SELECT level, index, hash FROM kzg_log_tree ORDER BY level, index"
        ).fetchall()
    assert sorted(level for level, _, _ in stored) == sorted(expected)
    assert all(index < done >> level for level, index, _ in stored)
    copy_log(pg_url, tmp_path / "copy")
    tree_files = TreeFiles(tmp_path / "copy")
    assert all(tree_files.get(level, index) == bytes(h) for level, index, h in stored)
    tree_files.close()
    report = verify_log(tmp_path / "copy", Keyring.load([str(public)]))
    assert (report.ok, report.records, report.checkpoints) == (True, done, len(sizes))
