"""Identifiers for decisions, review tickets, consents and objections: UUIDv7 (RFC 9562).

Time-ordered, so records sort by creation; unique across processes and hosts. They are names,
not secrets: access to what they name is checked against the requester.
"""

from __future__ import annotations

import os
import random
import time

__all__ = ["new_id"]

_random = random.Random(os.urandom(32))
_getrandbits = _random.getrandbits
_time_ns = time.time_ns
# the 80 bits after the millisecond: version 7 in the top nibble, variant 0b10 at bits 62-63,
# 74 random bits around them
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
_RANDOM = ((1 << 80) - 1) ^ (0xF << 76) ^ (0b11 << 62)


def new_id() -> str:
    """A new UUIDv7 string."""
    h = (
        (((_time_ns() // 1_000_000) << 80) | (_getrandbits(80) & _RANDOM) | _VERSION_VARIANT)
        .to_bytes(16)
        .hex()
    )
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _reseed_after_fork() -> None:
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)
