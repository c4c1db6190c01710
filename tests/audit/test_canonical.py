"""The canonical line encoding (and every line the writer makes) agrees with RFC 8785."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.lines import LineEncoder
from kzai_guard.audit.segments import encode_line
from kzai_guard.audit.shredding import MemorySubjectKeys, Sealer, SqliteSubjectKeys

from .conftest import make_record

_keys = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12
)
_strings = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_ints = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
_values = st.recursive(
    st.one_of(_strings, _ints),
    lambda inner: st.dictionaries(_keys, inner, max_size=5),
    max_leaves=12,
)


@given(st.dictionaries(_keys, _values, max_size=8))
def test_canonical_json_equals_rfc8785_for_str_int_objects(value: dict[str, object]) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(
    st.integers(min_value=0, max_value=2**40),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    _strings,
    _strings,
)
def test_log_line_equals_rfc8785(seq: int, prev: str, subject: str, detail: str) -> None:
    rec = make_record(seq % 1000, subject=subject, detail=detail).as_dict()
    sealed = {"ct": "AAAA", "fields": "subject,detail", "ref": "sk:00"}
    expected = rfc8785.dumps({"prev": prev, "rec": rec, "sealed": sealed, "seq": seq})
    assert encode_line(seq, prev, rec, sealed) == expected


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"d": "x", "c": 2}}) == b'{"a":{"c":2,"d":"x"},"b":1}'


_optional = st.one_of(st.none(), _strings)


@given(
    st.integers(min_value=0, max_value=2**40),
    st.one_of(st.none(), _strings),
    _optional,
    _optional,
    st.booleans(),
)
def test_written_line_equals_rfc8785_and_hashes_to_its_leaf(
    seq: int, subject: str | None, reviewer: str | None, detail: str | None, seal: bool
) -> None:
    record = make_record(seq % 1000, subject=subject, reviewer=reviewer, detail=detail)
    encoder = LineEncoder(Sealer(MemorySubjectKeys()) if seal else None)
    lines, hashes, size = encoder.encode([record], seq, b"ab" * 32, 1 << 30)
    (line,) = lines
    value = orjson.loads(line)
    assert line == rfc8785.dumps(value)
    assert (value["prev"], value["seq"]) == ("ab" * 32, seq)
    assert ("sealed" in value) == (seal and (subject is not None or reviewer is not None))
    assert hashes == [hashlib.sha256(b"\x00" + line).digest()]
    assert size == len(line) + 1


def test_lines_chain_by_leaf_hash_and_stop_once_the_room_is_used() -> None:
    records = [make_record(i) for i in range(600)]
    encoder = LineEncoder(Sealer(MemorySubjectKeys()))
    lines, hashes, size = encoder.encode(records, 5, b"0" * 64, 300 * 100)
    assert size >= 300 * 100 > size - len(lines[-1]) - 1
    for i, line in enumerate(lines[1:], 1):
        assert orjson.loads(line)["prev"] == hashes[i - 1].hex()
        assert orjson.loads(line)["seq"] == 5 + i


def test_text_json_cannot_hold_is_written_escaped() -> None:
    record = make_record(1, subject="p:\ud800", detail="d\udfff", reason="r\ud801")
    encoder = LineEncoder(None)
    (line,), _, _ = encoder.encode([record], 0, b"0" * 64, 1 << 30)
    rec = orjson.loads(line)["rec"]
    assert (rec["subject"], rec["detail"], rec["reason"]) == ("p:\\ud800", "d\\udfff", "r\\ud801")


class _Unindexed(SqliteSubjectKeys):
    """A reserved store without an index of record references: its lines carry the owner's
    key reference, and a reserved key's number until its assignment is durable."""

    remember = None  # type: ignore[assignment]
    record_key = None  # type: ignore[assignment]


def test_line_with_a_reserved_key_number_equals_rfc8785(tmp_path: Path) -> None:
    keys = _Unindexed(tmp_path / "keys.sqlite3")
    keys.reserve(2)
    (line,), _, _ = LineEncoder(Sealer(keys)).encode([make_record(1)], 7, b"0" * 64, 1 << 30)
    value = orjson.loads(line)
    assert isinstance(value["sealed"]["key"], int)
    assert line == rfc8785.dumps(value)
    keys.close()
