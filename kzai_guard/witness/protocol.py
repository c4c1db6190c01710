"""The ``add-checkpoint`` wire format of C2SP ``tlog-witness``, for both ends.

A request body is an old-size line, up to 63 consistency-proof lines (one base64 hash each), an
empty line, then the signed checkpoint note::

    old 20852014
    PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — example.com/behind-the-sofa Az3grlgt...

A 200 answer is one or more note signature lines (the cosignatures); a 409 answer is the
witness's size for the origin and a newline, with content type ``text/x.tlog.size``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "encode_add_checkpoint",
    "parse_add_checkpoint",
    "parse_size",
]

MAX_PROOF_LINES = 63
"""The most consistency-proof lines a request may carry."""

SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""The content type of a 409 answer."""


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """One ``add-checkpoint`` request: the size the log thinks the witness holds, the
    consistency proof from it, and the signed checkpoint note (text, ending in a newline)."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str


def _decimal(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (text != "0" and text[0] == "0"):
        raise ValueError(f"{text!r} is not a decimal without leading zeroes")
    return int(text)


def parse_size(text: str) -> int:
    """The size in a 409 answer (``"<size>\\n"``); ``ValueError`` if it is not one."""
    if not text.endswith("\n"):
        raise ValueError("a size answer ends with a newline")
    return _decimal(text[:-1])


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body; ``ValueError`` (answered 400) if it is malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("the request needs an empty line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise ValueError("the request starts with an 'old <size>' line")
    old_size = _decimal(first[4:])
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            node = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise ValueError(f"proof line {line!r} is not base64") from None
        if len(node) != 32:
            raise ValueError("a proof line is one 32-byte hash")
        proof.append(node)
    return AddCheckpoint(old_size, tuple(proof), note)


def encode_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body for ``note`` with a consistency proof from ``old_size``."""
    if len(proof) > MAX_PROOF_LINES:
        raise ValueError(f"a request carries at most {MAX_PROOF_LINES} proof lines")
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()
