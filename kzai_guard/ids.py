"""Identifiers for decisions, review tickets, consents and objections: UUIDv7 (RFC 9562).

Time-ordered, so records sort by creation; unique across processes and hosts. They are names,
not secrets: access to what they name is checked against the requester.

Where it was built, the C twin (``kzai_guard/_ids.c``) makes them; :func:`python_new_id` makes
the same kind of id in Python (:data:`NATIVE` says which is in use).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

from kzai_guard._native import native_module

__all__ = ["NATIVE", "new_id", "python_new_id"]

_random = random.Random(os.urandom(32))
_getrandbits = _random.getrandbits
_time_ns = time.time_ns
# the 80 bits after the millisecond: version 7 in the top nibble, variant 0b10 at bits 62-63,
# 74 random bits around them
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
_RANDOM = ((1 << 80) - 1) ^ (0xF << 76) ^ (0b11 << 62)


def python_new_id() -> str:
    """A new UUIDv7 string, made in Python."""
    h = (
        (((_time_ns() // 1_000_000) << 80) | (_getrandbits(80) & _RANDOM) | _VERSION_VARIANT)
        .to_bytes(16)
        .hex()
    )
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _reseed_after_fork() -> None:
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)

_native_ids = native_module("kzai_guard._ids")

NATIVE = _native_ids is not None
"""True when ids are made by the C twin."""

new_id: Callable[[], str] = python_new_id if _native_ids is None else _native_ids.new_id
"""A new UUIDv7 string."""
