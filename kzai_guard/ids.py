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


def new_id() -> str:
    """A new UUIDv7 string."""
    value = (
        ((_time_ns() // 1_000_000) << 80)
        | (0x7 << 76)
        | (_getrandbits(12) << 64)
        | (0b10 << 62)
        | _getrandbits(62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _reseed_after_fork() -> None:
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)
