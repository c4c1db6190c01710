"""The on-disk layout of an audit directory and the format of one log line.

::

    AUDIT_DIR/
      origin                          the log's name, first line of every checkpoint
      format                          the log format (2; no file: format 1), see audit.leaf
      00000000000000000000.log        segment: lines for seq 0, 1, ...
      00000000000000000000.checkpoints  signed checkpoints taken while that segment was active
      00000000000000000000.index      record-id index, once the segment is sealed
      00000000000000052113.log        next segment, named by its first sequence number
      ...
      tree/level-LL.hashes            stored Merkle tree (see kzai_guard.audit.tree)
      anchor.json                     after pruning: where the retained log starts (signed)
      unsigned-tail                   signed mark of a writer's records not yet checkpointed
      keys/                           demo signing key, made when none is configured
      subject-keys.sqlite3            default per-subject key store (crypto-shredding)

A line is the canonical JSON (RFC 8785) of ``{"prev", "rec", "sealed"?, "seq"}`` followed by a
newline: ``prev`` is the hex line hash of the previous line (64 zeros for the first), ``rec`` the
record without its personal fields, ``sealed`` the encrypted personal fields, ``seq`` the
0-based position. The line hash is the RFC 9162 leaf hash of the line without its newline,
``SHA-256(0x00 || SHA-256(line))`` in format 2 and ``SHA-256(0x00 || line)`` in format 1
(:mod:`kzai_guard.audit.leaf`): one hash serves both the chain and the Merkle tree.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.leaf import LINES, check_format
from kzai_guard.errors import AuditLogError

__all__ = [
    "ANCHOR_FILE",
    "FORMAT_FILE",
    "GENESIS",
    "ORIGIN_FILE",
    "Anchor",
    "Segment",
    "encode_line",
    "fsync_directory",
    "list_segments",
    "parse_line",
    "read_anchor",
    "read_format",
    "read_origin",
    "segment_paths",
]

GENESIS = "0" * 64
"""The ``prev`` of the first line of a log."""

ORIGIN_FILE = "origin"
ANCHOR_FILE = "anchor.json"
FORMAT_FILE = "format"
_SEGMENT_RE = re.compile(r"^(\d{20})\.log$")
LINE_PREFIX = b'{"prev":"'
"""Every line starts with these bytes, then the 64 hex digits of ``prev``."""
SEQ_MARKER = b',"seq":'
"""The last member of every line; the sequence number follows it."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment file: the lines from sequence number ``first`` on."""

    first: int
    path: Path

    @property
    def checkpoints(self) -> Path:
        """The file of checkpoints taken while this segment was active."""
        return self.path.with_suffix(".checkpoints")


def fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (files created, renamed or removed) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_paths(directory: Path, first: int) -> Segment:
    """The segment that starts at ``first``."""
    return Segment(first, directory / f"{first:020d}.log")


def list_segments(directory: Path) -> list[Segment]:
    """The segments in ``directory``, in order."""
    # names first, paths only for the matches: a log has three files per segment and more
    found = [
        Segment(int(name[:20]), directory / name)
        for name in os.listdir(directory)
        if name.endswith(".log") and _SEGMENT_RE.match(name)
    ]
    found.sort(key=lambda s: s.first)
    return found


def encode_line(seq: int, prev: str, rec: dict[str, Any], sealed: dict[str, str] | None) -> bytes:
    """The canonical line (without newline)."""
    value: dict[str, Any] = {"prev": prev, "rec": rec, "seq": seq}
    if sealed is not None:
        value["sealed"] = sealed
    return canonical_json(value)


def parse_line(line: bytes) -> dict[str, Any]:
    """The JSON object of a line; ``ValueError`` if it is not one."""
    value = orjson.loads(line)
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("seq"), int)
        or not isinstance(value.get("prev"), str)
        or not isinstance(value.get("rec"), dict)
    ):
        raise ValueError("not an audit log line")
    return value


def read_origin(directory: Path) -> str | None:
    """The log's origin line, if the directory has one."""
    try:
        return (directory / ORIGIN_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise AuditLogError(f"{directory / ORIGIN_FILE} is not UTF-8 text: {exc}") from None


def read_format(directory: Path) -> int:
    """The log's format (:mod:`kzai_guard.audit.leaf`): the ``format`` file's number, 1 when
    there is none (every log made before format 2). Raises
    :class:`~kzai_guard.errors.AuditLogError` for a format this version does not know."""
    try:
        text = (directory / FORMAT_FILE).read_bytes()
    except FileNotFoundError:
        return LINES
    try:
        return check_format(int(text.strip()))
    except ValueError as exc:
        raise AuditLogError(f"{directory / FORMAT_FILE}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a pruned log starts: the state of the tree after ``size`` records.

    ``prev`` is the line hash of record ``size - 1``, ``range`` the right edge of the tree over
    the pruned records, ``checkpoint`` the signed note for exactly ``size`` records. The
    pruning states its rule and moment: ``retention_seconds`` (the retention period),
    ``pruned_at`` (when, Unix microseconds) and ``newest_pruned`` (the time of record
    ``size - 1``, Unix microseconds); ``signature`` is the log key's signature line over all of
    it (see :mod:`kzai_guard.audit.anchor_signature`). An anchor without one is refused.
    """

    size: int
    prev: str
    range: tuple[bytes, ...]
    checkpoint: str
    retention_seconds: int | None = None
    pruned_at: int | None = None
    newest_pruned: int | None = None
    signature: str | None = None

    def fields(self) -> dict[str, Any]:
        """The JSON members (without ``signature``)."""
        out: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "prev": self.prev,
            "range": [h.hex() for h in self.range],
            "size": self.size,
        }
        for name in ("retention_seconds", "pruned_at", "newest_pruned"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_json(self) -> str:
        """The ``anchor.json`` text."""
        out = self.fields()
        if self.signature is not None:
            out["signature"] = self.signature
        return json.dumps(out, indent=2, sort_keys=True)


def read_anchor(directory: Path) -> Anchor | None:
    """The anchor of a pruned log, or ``None`` if nothing was pruned."""
    path = directory / ANCHOR_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Anchor(
            size=int(data["size"]),
            prev=str(data["prev"]),
            range=tuple(bytes.fromhex(h) for h in data["range"]),
            checkpoint=str(data["checkpoint"]),
            retention_seconds=_optional_int(data, "retention_seconds"),
            pruned_at=_optional_int(data, "pruned_at"),
            newest_pruned=_optional_int(data, "newest_pruned"),
            signature=None if data.get("signature") is None else str(data["signature"]),
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
        raise AuditLogError(f"{path} is damaged: {type(exc).__name__}: {exc}") from None


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if type(value) is not int:
        raise ValueError(f"{name} is not an integer")
    return value
