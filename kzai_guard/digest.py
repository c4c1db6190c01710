"""SHA-256 as lowercase hex, the digest of an explanation that its audit record names.

Where it was built, the C twin (``kzai_guard/_digest.c``) computes it without the hash object
and digest context :mod:`hashlib` makes per call; :func:`python_sha256_hex` gives the same
string in Python (:data:`NATIVE` says which is in use).
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256

from kzai_guard._native import native_module

__all__ = ["NATIVE", "python_sha256_hex", "sha256_hex"]


def python_sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data``, as lowercase hex (:mod:`hashlib`)."""
    return sha256(data).hexdigest()


_native = native_module("kzai_guard._digest")
NATIVE = _native is not None
"""True when the C twin computes the digests."""
sha256_hex: Callable[[bytes], str] = (
    _native.sha256_hex if _native is not None else python_sha256_hex
)
"""SHA-256 of ``data``, as lowercase hex: the C twin where it was built."""
