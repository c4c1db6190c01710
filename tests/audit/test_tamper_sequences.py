"""Random sequences of tampering without the key never give a log that opens and verifies as
anything but what was written, except the newest records cut off with their checkpoints.

Each example copies one closed log (16 records in 3 segments, a checkpoint every 4 records),
applies a few operations an insider with write access can do (edit, delete, insert, reorder
and truncate records, recompute the chain, remove or replace files, change or remove the log
format marker, write checkpoints with a key of the same name or copied from elsewhere), then
opens the log (which may refuse) and
verifies it with the real key. Whenever verify says OK, the lines must be the first lines
that were written, byte for byte.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.checkpoint import Checkpoint
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.segments import list_segments
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditLogError

from .conftest import make_record
from .tampering import append_record, edit_record, line_hash, lines_of, rechain, write_lines

SIGNER = Signer.generate("test-key")
STRANGER = Signer.generate("test-key")
KEYRING = Keyring([SIGNER.public_key])
OPTIONS: dict[str, Any] = {
    "checkpoint_every": 4,
    "segment_max_bytes": 1800,
    "durability": "sync",
    "seal_personal_fields": False,
    "retention_days": None,
}
N = 16

INDEX = st.integers(0, N + 2)
OPERATIONS = st.one_of(
    st.tuples(st.just("edit"), INDEX, st.sampled_from(["allow", "block", "route"])),
    st.tuples(st.just("edit-rechain"), INDEX, st.sampled_from(["allow", "block", "route"])),
    st.tuples(st.just("delete-rechain"), INDEX),
    st.tuples(st.just("insert-rechain"), INDEX),
    st.tuples(st.just("swap-rechain"), INDEX, INDEX),
    st.tuples(st.just("truncate-lines"), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("cut-bytes"), st.integers(1, 400)),
    st.tuples(
        st.just("remove"),
        st.sampled_from(
            [
                "newest-log",
                "oldest-log",
                "newest-checkpoints",
                "all-checkpoints",
                "tree",
                "indexes",
                "mark",
                "origin",
                "format",
                "keys-store",
            ]
        ),
    ),
    st.tuples(st.just("resign"), st.booleans()),
    st.tuples(st.just("format"), st.sampled_from([b"1\n", b"2\n", b"3\n", b""])),
    st.tuples(
        st.just("replay-checkpoints"),
    ),
    st.tuples(
        st.just("append"),
    ),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tamper") / "log"
    log = AuditLog.open(path, signer=SIGNER, **OPTIONS)
    for i in range(N):
        log.write(make_record(i))
    log.close()
    assert len(list_segments(path)) >= 3
    return path


def _apply(path: Path, op: tuple[Any, ...]) -> None:
    kind = op[0]
    lines = lines_of(path)
    if kind in ("edit", "edit-rechain", "delete-rechain", "swap-rechain") and not lines:
        return
    if kind == "edit":
        edit_record(path, op[1] % len(lines), verdict=op[2])
    elif kind == "edit-rechain":
        seq = op[1] % len(lines)
        edit_record(path, seq, verdict=op[2])
        rechain(path, seq)
    elif kind == "delete-rechain":
        seq = op[1] % len(lines)
        write_lines(path, lines[:seq] + lines[seq + 1 :])
        if lines_of(path):
            rechain(path, min(seq, len(lines_of(path)) - 1))
    elif kind == "insert-rechain":
        seq = op[1] % (len(lines) + 1)
        rec = make_record(1000 + seq, kind="review.completed", verdict="allow").as_dict()
        forged = canonical_json({"prev": "0" * 64, "rec": rec, "seq": seq})
        write_lines(path, [*lines[:seq], forged, *lines[seq:]])
        rechain(path, seq)
    elif kind == "swap-rechain":
        a, b = op[1] % len(lines), op[2] % len(lines)
        lines[a], lines[b] = lines[b], lines[a]
        write_lines(path, lines)
        rechain(path, min(a, b))
    elif kind == "truncate-lines":
        keep = max(0, len(lines) - op[1])
        write_lines(path, lines[:keep])
        if op[2]:  # and the checkpoints beyond
            for seg in list_segments(path):
                if seg.checkpoints.exists():
                    kept = [
                        block
                        for block in seg.checkpoints.read_text().split("\n\n")
                        if block and int(block.split("\n")[1]) <= keep
                    ]
                    seg.checkpoints.write_text("".join(b + "\n\n" for b in kept))
    elif kind == "cut-bytes":
        newest = list_segments(path)[-1].path
        data = newest.read_bytes()
        newest.write_bytes(data[: max(0, len(data) - op[1])])
    elif kind == "remove":
        _remove(path, op[1])
    elif kind == "resign":
        tree = CompactRange()
        for line in lines:
            tree.append(bytes.fromhex(line_hash(path, line)))
        origin = (path / "origin").read_text().strip() if (path / "origin").exists() else "x"
        note = Checkpoint(origin, tree.size, tree.root()).sign([STRANGER]).note() + "\n"
        target = list_segments(path)[-1].checkpoints
        if op[1]:
            target.write_text(note)
        else:
            with open(target, "a") as f:
                f.write(note)
    elif kind == "format":
        (path / "format").write_bytes(op[1])
    elif kind == "replay-checkpoints":
        segments = list_segments(path)
        if len(segments) > 1 and segments[0].checkpoints.exists():
            shutil.copyfile(segments[0].checkpoints, segments[-1].checkpoints)
    elif kind == "append":
        append_record(path, make_record(999, kind="review.completed", verdict="allow").as_dict())


def _remove(path: Path, what: str) -> None:
    segments = list_segments(path)
    if what == "newest-log" and segments:
        segments[-1].path.unlink()
    elif what == "oldest-log" and segments:
        segments[0].path.unlink()
    elif what == "newest-checkpoints" and segments:
        segments[-1].checkpoints.unlink(missing_ok=True)
    elif what == "all-checkpoints":
        for file in path.glob("*.checkpoints"):
            file.unlink()
    elif what == "tree":
        shutil.rmtree(path / "tree", ignore_errors=True)
    elif what == "indexes":
        for file in path.glob("*.index*"):
            file.unlink()
    elif what == "mark":
        (path / "unsigned-tail").unlink(missing_ok=True)
    elif what == "origin":
        (path / "origin").unlink(missing_ok=True)
    elif what == "format":
        (path / "format").unlink(missing_ok=True)
    elif what == "keys-store":
        (path / "subject-keys.sqlite3").unlink(missing_ok=True)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=4))
def test_tampering_never_opens_and_verifies_as_anything_but_a_prefix(
    template: Path, tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[Any, ...]]
) -> None:
    original = lines_of(template)
    path = tmp_path_factory.mktemp("t") / "log"
    shutil.copytree(template, path)
    for op in operations:
        # the attacker's own tools may fail on the damage already done
        with contextlib.suppress(OSError, IndexError, ValueError, orjson.JSONDecodeError):
            _apply(path, op)
    for _ in range(2):  # before and after a restart
        # a damaged sealed segment may still open (an open reads the active segment only)
        # but whatever the writer then signs is over the records it wrote
        with contextlib.suppress(AuditLogError):
            AuditLog.open(path, signer=SIGNER, **OPTIONS).close()
        if verify_log(path, KEYRING).ok:
            lines = lines_of(path)
            assert lines == original[: len(lines)], operations
