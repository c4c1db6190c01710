"""The ``head`` file of a log directory: the head every batch leaves for the next writer.

``MAGIC``, the JSON of the head and of the active segment's position, a newline, and the
SHA-256 of that JSON: a head torn by a crash fails the digest and is rebuilt from the files.
Bytes after the digest (a longer head written before) are ignored.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import orjson

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.storage import LogHead

__all__ = ["MAGIC", "HeadFile", "encode_head", "parse_head"]

MAGIC = b"KZAIHEAD1\n"
_DIGEST = 32


class HeadFile(NamedTuple):
    """What the head file holds: the log's head and where its active segment stands."""

    head: LogHead
    segment: int
    """The first sequence number of the active segment (its name)."""
    segment_bytes: int
    """The active segment's length after the head's last line."""
    segment_started: float
    """When the active segment was started (``time.time()``)."""


def encode_head(state: HeadFile) -> bytes:
    """The bytes of the head file for ``state``."""
    head = state.head
    body = orjson.dumps(
        {
            "checkpoint": head.checkpoint.note() if head.checkpoint else None,
            "checkpoint_time": head.checkpoint_time,
            "edge": [h.hex() for h in head.edge],
            "erasures": head.erasures,
            "prev": head.prev.hex(),
            "segment": state.segment,
            "segment_bytes": state.segment_bytes,
            "segment_started": state.segment_started,
            "size": head.size,
        }
    )
    return MAGIC + body + b"\n" + hashlib.sha256(body).digest()


def parse_head(data: bytes) -> HeadFile | None:
    """What ``data`` (the head file's bytes) holds, or ``None`` if it is torn or missing."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0 or len(data) < end + 1 + _DIGEST:
        return None
    body = data[len(MAGIC) : end]
    if hashlib.sha256(body).digest() != data[end + 1 : end + 1 + _DIGEST]:
        return None
    try:
        value = orjson.loads(body)
        note = value["checkpoint"]
        head = LogHead(
            int(value["size"]),
            bytes.fromhex(value["prev"]),
            tuple(bytes.fromhex(h) for h in value["edge"]),
            SignedCheckpoint.parse(note) if note else None,
            float(value["checkpoint_time"]),
            int(value["erasures"]),
        )
        return HeadFile(
            head,
            int(value["segment"]),
            int(value["segment_bytes"]),
            float(value["segment_started"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
