"""What the log's Merkle tree commits to: the leaf of one line, in each log format.

A log's format is fixed when the log is created and read from the log ever after (a ``format``
file beside ``origin`` in a log directory, a column of the head row in PostgreSQL):

- **Format 1** (:data:`LINES`, every log made before format 2, and any log without a marker):
  the tree's entry is the line itself, so its leaf is ``SHA-256(0x00 || line)``. A tlog client
  would need the lines, which hold sealed personal data, to rebuild the tree.
- **Format 2** (:data:`COMMITMENTS`, the default for new logs): the tree's entry is the line's
  commitment ``C = SHA-256(line)``, 32 bytes, and its leaf is ``SHA-256(0x00 || C)``. The
  commitments can be published as C2SP tlog-tiles entry bundles: they say nothing about the
  records, and any tlog client checks proofs with them alone.

In both formats the chain's ``prev`` is the previous line's leaf hash, and one hash serves both
the chain and the tree. Every place that computes a leaf calls :func:`line_leaf` (or reads the
format's entry from :func:`entry`), so this module is the one definition. Pure, no I/O.

>>> line_leaf(LINES, b"x").hex()[:16]
'3c7e9bc930dc93f0'
>>> line_leaf(COMMITMENTS, b"x") == line_leaf(LINES, entry(COMMITMENTS, b"x"))
True
"""

from __future__ import annotations

import hashlib

__all__ = [
    "COMMITMENTS",
    "DEFAULT_FORMAT",
    "FORMATS",
    "LINES",
    "check_format",
    "entry",
    "line_leaf",
]

LINES = 1
"""Format 1: the tree's entry is the line."""
COMMITMENTS = 2
"""Format 2: the tree's entry is the line's commitment ``SHA-256(line)``."""
FORMATS = (LINES, COMMITMENTS)
"""Every format this version reads and writes."""
DEFAULT_FORMAT = COMMITMENTS
"""The format of a log created now."""

_sha256 = hashlib.sha256


def entry(log_format: int, line: bytes) -> bytes:
    """The tree's entry for ``line`` (without newline): the line, or its 32-byte commitment."""
    if log_format == COMMITMENTS:
        return _sha256(line).digest()
    if log_format == LINES:
        return line
    raise ValueError(f"unknown log format {log_format!r}")


def line_leaf(log_format: int, line: bytes) -> bytes:
    """The RFC 9162 leaf hash ``SHA-256(0x00 || entry)`` of ``line`` in ``log_format``."""
    if log_format == COMMITMENTS:
        return _sha256(b"\x00" + _sha256(line).digest()).digest()
    if log_format == LINES:
        return _sha256(b"\x00" + line).digest()
    raise ValueError(f"unknown log format {log_format!r}")


def check_format(value: object) -> int:
    """``value`` as a known format; ``ValueError`` naming the formats otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value in FORMATS:
        return value
    raise ValueError(f"unknown log format {value!r}: this version reads formats 1 and 2")
