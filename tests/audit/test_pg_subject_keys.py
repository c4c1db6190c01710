"""Subject keys in PostgreSQL: one key per subject across processes, erasure seen by all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kzai_guard.audit.keys import write_keypair
from kzai_guard.audit.lines import LineEncoder
from kzai_guard.audit.pg_copy import copy_log
from kzai_guard.audit.pg_storage import PostgresLogStorage
from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.shredding import ERASED, BatchedSubjectKeys, Sealer, subject_ref

from .conftest import make_record
from .pg import append_batch, private_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """One private database for the module."""
    yield from private_database()


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


_ERASE = """
import sys
from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys
keys = PostgresSubjectKeys(sys.argv[1])
keys.erase(sys.argv[2])
keys.close()
"""


def _erase_elsewhere(url: str, ref: str) -> None:
    process = _python(_ERASE, url, ref)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def test_the_store_is_a_batched_key_store(pg_url: str) -> None:
    keys = PostgresSubjectKeys(pg_url)
    assert isinstance(keys, BatchedSubjectKeys)
    keys.close()


def test_an_erasure_in_another_process_makes_the_sealed_fields_unreadable_here(
    pg_url: str, tmp_path: Path
) -> None:
    _, public, signer = write_keypair(tmp_path / "keys", "erase-test")
    storage = PostgresLogStorage(pg_url)
    keys = PostgresSubjectKeys(pg_url)
    records = [make_record(i, id=f"erase-{i}", subject=f"p:e{i % 2}") for i in range(10)]
    append_batch(storage, LineEncoder(Sealer(keys)), records, signer)
    storage.close()
    copy_log(pg_url, tmp_path / "before")
    read = list(read_verified(tmp_path / "before", public_keys=[public], subject_keys=keys))
    assert {e.record.subject for e in read if e.record.id.startswith("erase-")} == {
        "p:e0",
        "p:e1",
    }

    _erase_elsewhere(pg_url, subject_ref("p:e0"))

    copy_log(pg_url, tmp_path / "after")
    read = list(read_verified(tmp_path / "after", public_keys=[public], subject_keys=keys))
    subjects = {e.record.id: e.record.subject for e in read if e.record.id.startswith("erase-")}
    assert subjects == {f"erase-{i}": ERASED if i % 2 == 0 else "p:e1" for i in range(10)}
    keys.close()


def test_a_writer_drops_its_cached_keys_when_a_key_is_erased_elsewhere(pg_url: str) -> None:
    keys = PostgresSubjectKeys(pg_url)
    ref = subject_ref("p:cached")
    keys.prefetch([ref])
    before = keys.key_for(ref)
    _erase_elsewhere(pg_url, ref)
    keys.prefetch([ref])  # what the writer does before it seals its next batch
    after = keys.key_for(ref)
    assert before is not None and after is not None and after != before
    assert keys.key_for(ref, create=False) == after
    keys.close()


_MAKE = """
import sys, time
from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys
keys = PostgresSubjectKeys(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
refs = [f"sk:race{i}" for i in range(200)]
keys.prefetch(refs)
print(" ".join(keys.key_for(ref).hex() for ref in refs))
keys.close()
"""


def test_processes_meeting_new_subjects_at_once_agree_on_one_key_each(pg_url: str) -> None:
    start = str(time.time() + 2.0)
    makers = [_python(_MAKE, pg_url, start) for _ in range(3)]
    seen = []
    for maker in makers:
        out, err = maker.communicate(timeout=60)
        assert maker.returncode == 0, err
        seen.append(out.split())
    assert len(seen[0]) == 200
    assert seen[0] == seen[1] == seen[2]


def test_record_references_are_found_from_any_connection_until_their_key_is_erased(
    pg_url: str,
) -> None:
    keys = PostgresSubjectKeys(pg_url)
    records = [make_record(i, id=f"refs-{i}", subject=f"p:refs{i % 2}") for i in range(6)]
    bodies = LineEncoder(Sealer(keys)).bodies(records)
    keys.commit()  # as the log does before it writes the lines
    refs = [re.search(rb'"ref":"(rr:[0-9a-f]{32})"', body)[1].decode() for body in bodies]  # type: ignore[index]
    reader = PostgresSubjectKeys(pg_url)
    owners = [keys.key_for(subject_ref(f"p:refs{i % 2}"), create=False) for i in range(6)]
    assert [reader.record_key(ref) for ref in refs] == owners

    _erase_elsewhere(pg_url, subject_ref("p:refs0"))

    assert [reader.record_key(ref) is None for ref in refs] == [i % 2 == 0 for i in range(6)]
    reader.close()
    keys.close()
