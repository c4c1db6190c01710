"""The explanation's digest: SHA-256 as lowercase hex, the same from the C twin and from Python."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard import digest
from kzai_guard._native import purepython

REQUIRED = os.environ.get("KZAI_GUARD_REQUIRE_NATIVE") == "1"


def _c_built() -> bool:
    try:
        from kzai_guard import _digest  # noqa: F401
    except ImportError:
        return False
    return True


needs_c = pytest.mark.skipif(
    not _c_built() and not REQUIRED, reason="the C digest was not built here"
)


@needs_c
@given(st.binary(max_size=4096))
def test_the_c_digest_is_the_python_digest(data: bytes) -> None:
    from kzai_guard import _digest

    assert _digest.sha256_hex(data) == digest.python_sha256_hex(data)


@given(st.binary(max_size=256))
def test_the_python_digest_is_hashlibs_hex(data: bytes) -> None:
    assert digest.python_sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_the_digest_of_nothing_is_sha256s_published_value() -> None:
    assert digest.sha256_hex(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@needs_c
def test_the_c_digest_refuses_what_is_not_bytes() -> None:
    from kzai_guard import _digest

    with pytest.raises(TypeError):
        _digest.sha256_hex("text")  # type: ignore[arg-type]


@needs_c
@pytest.mark.skipif(purepython(), reason="the C twins are turned off")
def test_the_c_digest_is_in_use_where_it_was_built() -> None:
    assert digest.NATIVE is True
