"""Identifiers for decisions, review tickets, consents and objections: UUIDv7 (RFC 9562).

Time-ordered, so records sort by creation; unique across processes and hosts. They are names,
not secrets: access to what they name is checked against the requester.

Where it was built, the C twin (``kzai_guard/_ids.c``) makes them; :func:`python_new_id` makes
the same kind of id in Python (:data:`NATIVE` says which is in use). Both take their random bits
from the operating system's CSPRNG (``getentropy``, ``os.urandom``), a pool at a time; a forked
child empties its pool, so parent and child never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from kzai_guard._native import native_module

__all__ = ["NATIVE", "new_id", "python_new_id"]

_POOL_BYTES = 4096
_ID_RANDOM = 10
"""Random bytes per id: 74 of their 80 bits are kept."""
_time_ns = time.time_ns
_from_bytes = int.from_bytes
_urandom = os.urandom


class _Pool:
    """Bytes from ``os.urandom``, handed out once each."""

    __slots__ = ("bytes", "lock", "used")

    def __init__(self) -> None:
        self.bytes = b""
        self.used = 0
        self.lock = threading.Lock()

    def take(self) -> int:
        """The next :data:`_ID_RANDOM` bytes as an integer."""
        with self.lock:
            used = self.used
            if used + _ID_RANDOM > len(self.bytes):
                self.bytes = _urandom(_POOL_BYTES)
                used = 0
            self.used = used + _ID_RANDOM
            return _from_bytes(self.bytes[used : used + _ID_RANDOM])

    def empty(self) -> None:
        """Forget what is left (in a forked child: the parent hands those bytes out)."""
        self.bytes = b""
        self.used = 0
        self.lock = threading.Lock()


_pool = _Pool()
_take = _pool.take
# the 80 bits after the millisecond: version 7 in the top nibble, variant 0b10 at bits 62-63,
# 74 random bits around them
_VERSION_VARIANT = (0x7 << 76) | (0b10 << 62)
_RANDOM = ((1 << 80) - 1) ^ (0xF << 76) ^ (0b11 << 62)


def python_new_id() -> str:
    """A new UUIDv7 string, made in Python."""
    h = (
        (((_time_ns() // 1_000_000) << 80) | (_take() & _RANDOM) | _VERSION_VARIANT)
        .to_bytes(16)
        .hex()
    )
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


os.register_at_fork(after_in_child=_pool.empty)

_native_ids = native_module("kzai_guard._ids")

NATIVE = _native_ids is not None
"""True when ids are made by the C twin."""

new_id: Callable[[], str] = python_new_id if _native_ids is None else _native_ids.new_id
"""A new UUIDv7 string."""
