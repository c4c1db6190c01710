"""Subject identifiers: what is accepted, and how they appear outside the store."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.pseudonym import Pseudonymizer
from kzai_guard.core.subject import MAX_SUBJECT_LENGTH, check_subject

KEY = b"k" * 32


@given(st.text(min_size=1, max_size=40))
def test_a_pseudonym_is_the_truncated_hmac_of_the_subject(subject: str) -> None:
    expected = hmac.new(KEY, subject.encode("utf-8", "surrogatepass"), hashlib.sha256)
    try:
        value = Pseudonymizer(KEY)(subject)
    except UnicodeEncodeError:
        return
    assert value == expected.hexdigest()[:32]


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymizer(b"short")


def test_different_keys_give_unlinkable_pseudonyms() -> None:
    assert Pseudonymizer(KEY)("A-1") != Pseudonymizer(b"j" * 32)("A-1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("x" * (MAX_SUBJECT_LENGTH + 1), "longer than"),
        (" A-1", "white space"),
        ("A-\x001", "control"),
        ("A-\n1", "control"),
        ("A-\ud8001", "unprintable"),
    ],
)
def test_unusable_subject_identifiers_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_subject(value)


@given(
    st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=MAX_SUBJECT_LENGTH)
)
def test_printable_identifiers_are_accepted_unchanged(value: str) -> None:
    assert check_subject(value) == value
