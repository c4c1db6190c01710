"""Crypto-shredding: erasing a subject's key hides its personal fields, the log still verifies."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.lines import NATIVE, LineEncoder
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.record import EventKind
from kzai_guard.audit.segments import list_segments
from kzai_guard.audit.shredding import (
    ERASED,
    RECORD_REF_PREFIX,
    SEALED,
    MemorySubjectKeys,
    Sealer,
    SqliteSubjectKeys,
    SubjectKeys,
    record_ref,
    ref_key,
    subject_ref,
)
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import ConfigurationError

from .conftest import make_record


def _segment_bytes(directory: Path) -> bytes:
    return b"".join(s.path.read_bytes() for s in list_segments(directory))


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_erasing_a_subject_hides_its_fields_and_keeps_every_hash(
    tmp_path: Path, signer: Signer, keyring: Keyring, store: str
) -> None:
    keys: SubjectKeys = (
        MemorySubjectKeys() if store == "memory" else SqliteSubjectKeys(tmp_path / "keys.db")
    )
    log = AuditLog.open(tmp_path / "a", signer=signer, subject_keys=keys, checkpoint_every=3)
    for i in range(14):
        log.write(make_record(i))
    log.flush()
    before = _segment_bytes(tmp_path / "a")
    log.erase_subject("p:0003")
    log.close()
    assert _segment_bytes(tmp_path / "a") == before
    assert verify_log(tmp_path / "a", keyring).ok
    entries = list(read_verified(tmp_path / "a", public_keys=keyring, subject_keys=keys))
    assert len(entries) == 14
    for i, entry in enumerate(entries):
        original = make_record(i)
        if original.subject == "p:0003":
            assert (entry.record.subject, entry.record.detail) == (ERASED, ERASED)
            assert entry.erased is True
            assert (entry.record.id, entry.record.verdict) == (original.id, original.verdict)
        else:
            assert entry.record == original
            assert entry.erased is False


def test_sqlite_store_forgets_the_key_for_good(tmp_path: Path) -> None:
    keys = SqliteSubjectKeys(tmp_path / "keys.db")
    key = keys.key_for("sk:1")
    keys.commit()
    assert key is not None and len(key) == 32
    keys.erase("sk:1")
    keys.close()
    reopened = SqliteSubjectKeys(tmp_path / "keys.db")
    assert reopened.key_for("sk:1", create=False) is None
    reopened.close()
    assert key not in (tmp_path / "keys.db").read_bytes()


def test_sqlite_store_keeps_keys_across_reopen(tmp_path: Path) -> None:
    keys = SqliteSubjectKeys(tmp_path / "keys.db")
    key = keys.key_for("sk:2")
    keys.close()
    reopened = SqliteSubjectKeys(tmp_path / "keys.db")
    assert reopened.key_for("sk:2", create=False) == key
    reopened.close()


def test_default_store_lives_in_the_audit_directory(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer)
    log.write(make_record(1))
    log.erase_subject("p:0001")
    log.close()
    assert (tmp_path / "a" / "subject-keys.sqlite3").exists()
    (entry,) = read_verified(tmp_path / "a")
    assert entry.record.subject == ERASED


def test_reader_without_any_key_store_shows_sealed_marker(tmp_path: Path) -> None:
    keys = MemorySubjectKeys()
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), subject_keys=keys)
    log.write(make_record(2, reviewer="r:alice", detail=None))
    log.close()
    (entry,) = read_verified(tmp_path / "a")
    assert (entry.record.subject, entry.record.reviewer, entry.record.detail) == (
        SEALED,
        SEALED,
        None,
    )
    assert entry.erased is False


def test_record_without_subject_is_sealed_under_its_reviewer(tmp_path: Path) -> None:
    keys = MemorySubjectKeys()
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), subject_keys=keys)
    log.write(make_record(3, kind=EventKind.SWITCH_SUSPENDED, subject=None, reviewer="r:bob"))
    log.close()
    assert b"r:bob" not in _segment_bytes(tmp_path / "a")
    keys.erase(subject_ref("r:bob"))
    (entry,) = read_verified(tmp_path / "a", subject_keys=keys)
    assert (entry.record.reviewer, entry.record.detail) == (ERASED, ERASED)


def test_sealing_can_be_switched_off(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), seal_personal_fields=False)
    log.write(make_record(4))
    with pytest.raises(ConfigurationError, match="in clear"):
        log.erase_subject("p:0004")
    log.close()
    assert b'"subject":"p:0004"' in _segment_bytes(tmp_path / "a")


def test_new_records_after_erasure_get_a_fresh_key(tmp_path: Path) -> None:
    keys = MemorySubjectKeys()
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), subject_keys=keys)
    log.write(make_record(0, subject="p:x"))
    log.flush()
    log.erase_subject("p:x")
    log.write(make_record(1, subject="p:x"))
    log.close()
    old, new = read_verified(tmp_path / "a", subject_keys=keys)
    assert (old.record.subject, new.record.subject) == (ERASED, "p:x")


def test_nonces_never_repeat_within_a_writer(tmp_path: Path) -> None:
    keys = MemorySubjectKeys()
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), subject_keys=keys)
    for i in range(50):
        log.write(make_record(i, subject="p:same"))
    log.close()
    import base64

    import orjson

    nonces = set()
    for line in _segment_bytes(tmp_path / "a").split(b"\n")[:-1]:
        nonces.add(base64.b64decode(orjson.loads(line)["sealed"]["ct"])[:12])
    assert len(nonces) == 50
    assert os.path.exists(tmp_path / "a")


def test_sealed_personal_fields_read_back_after_a_batch_of_many_subjects(tmp_path: Path) -> None:
    keys = MemorySubjectKeys()
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), subject_keys=keys)
    for i in range(300):
        log.write(make_record(i, subject=f"p:{i % 37}", reviewer="r:x" if i % 5 else None))
    log.close()
    entries = list(read_verified(tmp_path / "a", subject_keys=keys))
    assert [(e.record.subject, e.record.reviewer, e.record.detail) for e in entries] == [
        (f"p:{i % 37}", "r:x" if i % 5 else None, f"score={i % 100}") for i in range(300)
    ]


def test_personal_field_json_cannot_hold_is_sealed_escaped(tmp_path: Path) -> None:
    keys = MemorySubjectKeys()
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), subject_keys=keys)
    log.write(make_record(1, subject="p:1", detail="bad \ud800"))
    log.close()
    (entry,) = read_verified(tmp_path / "a", subject_keys=keys)
    assert entry.record.detail == "bad \\ud800"


def test_an_id_or_owner_utf8_cannot_hold_is_sealed_escaped_and_the_log_stays_healthy(
    tmp_path: Path,
) -> None:
    keys = MemorySubjectKeys()
    log = AuditLog.open(tmp_path / "a", signer=Signer.generate("k"), subject_keys=keys)
    log.write(make_record(1, id="dec-\udc80", subject="p:\ud800", detail="d"))
    log.write(make_record(2, subject=None, reviewer="r:\udfff"))
    log.write(make_record(3, subject="p:fine"))
    log.close()
    entries = read_verified(tmp_path / "a", subject_keys=keys)
    assert [(e.record.id, e.record.subject, e.record.reviewer) for e in entries] == [
        ("dec-\\udc80", "p:\\ud800", None),
        ("dec-000002", None, "r:\\udfff"),
        ("dec-000003", "p:fine", None),
    ]
    assert not any(e.erased for e in entries)


def test_nonces_stay_unique_when_the_counter_wraps() -> None:
    sealer = Sealer(MemorySubjectKeys())
    sealer._counter = 0xFFFFFFFF - 3
    nonces = sealer.nonces(10)
    assert len(set(nonces)) == 10
    assert {len(n) for n in nonces} == {12}
    assert len({n[:8] for n in nonces}) == 2


_OWNERS = st.sampled_from(["p:a", "p:b", "p:c"])


@given(
    st.lists(_OWNERS, min_size=1, max_size=24),
    _OWNERS,
    st.sampled_from([False, True] if NATIVE else [False]),
)
def test_every_sealed_line_names_its_key_by_a_reference_that_dies_with_the_key(
    owners: list[str], erased: str, native: bool
) -> None:
    keys = MemorySubjectKeys()
    records = [
        make_record(i, subject=owner, review_id=f"ticket-of-{owner}", trace_id=f"trace-{owner}")
        for i, owner in enumerate(owners)
    ]
    lines = LineEncoder(Sealer(keys), native=native).encode(records, 0, b"0" * 64, 1 << 30)[0]
    values = [orjson.loads(line) for line in lines]
    refs = [value["sealed"]["ref"] for value in values]

    assert len(set(refs)) == len(refs) and all(r.startswith(RECORD_REF_PREFIX) for r in refs)
    assert all(set(value["rec"]).isdisjoint({"review_id", "trace_id"}) for value in values)
    owner_keys = [keys.key_for(subject_ref(owner), create=False) for owner in owners]
    assert [keys.record_key(ref) for ref in refs] == owner_keys
    keys.erase(subject_ref(erased))
    assert [keys.record_key(ref) is None for ref in refs] == [o == erased for o in owners]


class _BeforeRecordRefs(SqliteSubjectKeys):
    """The store as it was before record references: lines name their owner's key."""

    remember = None  # type: ignore[assignment]
    record_key = None  # type: ignore[assignment]


def test_lines_that_name_their_owners_key_are_read_and_erased_as_before(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    old = _BeforeRecordRefs(tmp_path / "keys.db")
    log = AuditLog.open(tmp_path / "a", signer=signer, subject_keys=old, checkpoint_every=3)
    for i in range(14):
        log.write(make_record(i))
    log.close()
    old.close()
    sealed = [orjson.loads(line)["sealed"] for line in _segment_bytes(tmp_path / "a").splitlines()]
    assert {s["ref"] for s in sealed} == {subject_ref(f"p:{i:04x}") for i in range(7)}

    keys = SqliteSubjectKeys(tmp_path / "keys.db")
    read = list(read_verified(tmp_path / "a", public_keys=keyring, subject_keys=keys))
    assert [e.record for e in read] == [make_record(i) for i in range(14)]
    keys.erase(subject_ref("p:0003"))
    read = list(read_verified(tmp_path / "a", public_keys=keyring, subject_keys=keys))
    assert [e.record.subject == ERASED for e in read] == [i % 7 == 3 for i in range(14)]
    keys.close()


@given(
    st.lists(
        st.tuples(_OWNERS, st.text(st.characters(exclude_categories=("Cs",)), max_size=40)),
        max_size=12,
    )
)
def test_the_sealers_record_references_are_record_ref_of_the_owners_key(
    records: list[tuple[str, str]],
) -> None:
    keys = MemorySubjectKeys()
    sealer = Sealer(keys)
    seals = sealer.for_batch(owner for owner, _ in records)
    refs = sealer.record_refs(records, seals)
    expected = [
        record_ref(ref_key(keys.key_for(subject_ref(owner)) or b""), record_id).encode()
        for owner, record_id in records
    ]
    assert refs == expected
