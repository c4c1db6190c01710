"""Explanation pages: many explanations in one store row, found again by decision id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.errors import StoreError
from kzai_guard.ids import new_id
from kzai_guard.stores.base import StoredExplanation
from kzai_guard.stores.pages import (
    BUCKET_MS,
    OTHER_BUCKETS,
    bucket_of,
    encode_page,
    find_entry,
    group_by_bucket,
)
from kzai_guard.stores.sqlite import open_sqlite

_uuid7 = st.builds(
    lambda ms, rand: str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62) | rand)),
    st.integers(min_value=0, max_value=2**48 - 1),
    st.integers(min_value=0, max_value=2**62 - 1),
)
_ids = st.one_of(_uuid7, st.text(min_size=1, max_size=40))
_entries = st.lists(
    st.tuples(
        _ids,
        st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
        st.text(min_size=1, max_size=20),
        st.integers(min_value=0, max_value=2**62),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.binary(max_size=200),
    ),
    max_size=20,
)


@dataclass(frozen=True)
class _Item:
    decision_id: str


@given(_entries)
def test_every_entry_of_a_page_is_found_by_its_id_first_copy_first(entries: list) -> None:
    page = encode_page(entries)
    for entry in entries:
        first = next(e for e in entries if e[0] == entry[0])
        assert find_entry([page], entry[0]) == first


@given(_entries, _ids)
def test_an_id_not_in_the_pages_is_not_found(entries: list, decision_id: str) -> None:
    kept = [e for e in entries if e[0] != decision_id]
    assert find_entry([encode_page(kept)], decision_id) is None


def test_an_id_written_inside_a_body_or_as_a_prefix_of_another_is_not_mistaken_for_it() -> None:
    target = new_id()
    other = (target + "x", "0" * 32, "p", 1, "a" * 64, f'{{"note":"{target}"}}'.encode())
    assert find_entry([encode_page([other])], target) is None


def test_the_oldest_page_wins_when_an_id_is_in_two() -> None:
    decision_id = new_id()
    old = (decision_id, "0" * 32, "p", 1, "a" * 64, b'{"v":1}')
    new = (decision_id, "0" * 32, "p", 2, "b" * 64, b'{"v":2}')
    assert find_entry([encode_page([old]), encode_page([new])], decision_id) == old


@given(_uuid7)
def test_a_uuid7_falls_in_the_bucket_of_its_millisecond(decision_id: str) -> None:
    millis = uuid.UUID(decision_id).int >> 80
    assert bucket_of(decision_id) == millis // BUCKET_MS


@given(st.text(max_size=40).filter(lambda s: len(s) != 36))
def test_other_ids_fall_in_the_buckets_below_zero(decision_id: str) -> None:
    assert -OTHER_BUCKETS <= bucket_of(decision_id) <= -1


@given(st.lists(_ids, max_size=30))
def test_grouping_puts_every_item_in_its_own_bucket_in_order(ids: list[str]) -> None:
    items = [_Item(i) for i in ids]
    groups = group_by_bucket(items)
    assert sorted(i.decision_id for g in groups.values() for i in g) == sorted(ids)
    for bucket, group in groups.items():
        assert [bucket_of(i.decision_id) for i in group] == [bucket] * len(group)
        assert group == [i for i in items if bucket_of(i.decision_id) == bucket]


@pytest.mark.parametrize(
    "page",
    [
        b'\x00\x00"x"',
        b'\x00\x00\x00\x09["x"',
        b'\x00\x00\x00\x02{}"x"',
        b'\x00\x00\x00\x0f[["x",1,2,3,4,9]]"x"',
    ],
)
def test_a_damaged_page_raises_value_error(page: bytes) -> None:
    with pytest.raises(ValueError):
        find_entry([page], "x")


def test_a_store_reads_explanations_written_one_row_each_by_earlier_versions() -> None:
    store = open_sqlite(None)
    decision_id = new_id()
    created = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    store._conn.execute(
        "INSERT INTO kzg_explanations VALUES (?, ?, ?, ?, ?, ?)",
        (decision_id, "0f" * 16, "loan", 1772366400000000, '{"summary":{"ru":"Да"}}', "ab" * 32),
    )
    assert store.get_explanation(decision_id) == StoredExplanation(
        decision_id, "0f" * 16, "loan", created, '{"summary":{"ru":"Да"}}'.encode(), "ab" * 32
    )
    store.close()


def test_a_store_with_a_damaged_page_says_so_instead_of_answering() -> None:
    store = open_sqlite(None)
    decision_id = new_id()
    store._conn.execute(
        "INSERT INTO kzg_explanation_pages (bucket, entries) VALUES (?, ?)",
        (bucket_of(decision_id), b"\x00\x00\x00\x50" + f'[["{decision_id}"'.encode()),
    )
    with pytest.raises(StoreError, match="damaged"):
        store.get_explanation(decision_id)
    store.close()


def test_a_batch_of_one_millisecond_takes_one_row_and_every_explanation_is_found() -> None:
    store = open_sqlite(None)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    prefix = new_id()[:15]
    batch = [
        StoredExplanation(
            f"{prefix}{n:03x}-8000-{n:012x}", "0f" * 16, "loan", at, b'{"n":%d}' % n, "ab" * 32
        )
        for n in range(300)
    ]
    store.add_explanations(batch)
    rows = store._conn.execute("SELECT count(*) FROM kzg_explanation_pages").fetchone()[0]
    assert rows == 1
    assert [store.get_explanation(e.decision_id) for e in batch] == batch
    store.close()
