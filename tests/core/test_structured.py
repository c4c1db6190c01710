"""RFC 8941 booleans (the objection signal) and strings (the disclosure header)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.policy import ModelInfo
from kzai_guard.http.disclosure import disclosure_header
from kzai_guard.http.structured import parse_boolean, serialize_string


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"?1", True),
        (b"?0", False),
        (b" ?1 ", True),
        (b"?1;source=app", True),
        (b"1", None),
        (b"true", None),
        (b"?2", None),
        (b"?10", None),
        (b"", None),
    ],
)
def test_booleans_parse_as_rfc_8941_says(raw: bytes, expected: bool | None) -> None:
    assert parse_boolean(raw) is expected


@given(st.binary(max_size=64))
def test_any_bytes_parse_to_a_boolean_or_to_no_signal(raw: bytes) -> None:
    result = parse_boolean(raw)
    assert result in (True, False, None)
    if result is not None:
        assert raw.strip(b" \t").startswith(b"?1" if result else b"?0")


@given(st.text(max_size=80))
def test_serialized_strings_are_one_quoted_printable_ascii_token(value: str) -> None:
    out = serialize_string(value)
    assert out.startswith('"') and out.endswith('"')
    inner = out[1:-1]
    assert all(" " <= ch <= "~" for ch in inner)
    unescaped = inner.replace("\\\\", "").replace('\\"', "")
    assert '"' not in unescaped and "\\" not in unescaped


def test_the_disclosure_header_names_mode_model_and_provider() -> None:
    model = ModelInfo(name="scorer", version="1.4", provider='Bank "A"')
    assert disclosure_header(model, human_reviewed=False) == (
        b'mode=machine-generated, model="scorer/1.4", provider="Bank \\"A\\""'
    )
    assert disclosure_header(None, human_reviewed=True) == b"mode=ai-originated"
