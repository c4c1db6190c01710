"""The canonical line encoding agrees with the published RFC 8785 encoder."""

from __future__ import annotations

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.segments import encode_line

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
