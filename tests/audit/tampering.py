"""What an insider with write access to the audit directory, but not the signing key, can do.

Each function changes the files as an attacker would with a text editor and a few lines of
Python: edit a record, recompute the hash chain, delete or replace files. Nothing here uses a
signing key.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.segments import GENESIS, list_segments


def lines_of(directory: Path) -> list[bytes]:
    """Every line of every segment, in order (without newlines)."""
    out: list[bytes] = []
    for seg in list_segments(directory):
        data = seg.path.read_bytes()
        if data:
            out += data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")
    return out


def write_lines(directory: Path, lines: list[bytes]) -> None:
    """Write ``lines`` back over the segments, each segment from its first seq on."""
    segments = list_segments(directory)
    for i, seg in enumerate(segments):
        end = segments[i + 1].first if i + 1 < len(segments) else len(lines)
        chunk = lines[seg.first : end]
        seg.path.write_bytes(b"".join(line + b"\n" for line in chunk))


def edit_record(directory: Path, seq: int, **fields: object) -> None:
    """Change fields of the record at ``seq`` in place, leaving the chain broken after it."""
    lines = lines_of(directory)
    value = orjson.loads(lines[seq])
    value["rec"].update(fields)
    lines[seq] = canonical_json(value)
    write_lines(directory, lines)


def rechain(directory: Path, first: int = 0) -> None:
    """Recompute every ``prev`` from ``first`` on, so the chain holds again."""
    lines = lines_of(directory)
    prev = GENESIS if first == 0 else line_hash(directory, lines[first - 1])
    for i in range(first, len(lines)):
        value = orjson.loads(lines[i])
        value["prev"] = prev
        value["seq"] = i
        lines[i] = canonical_json(value)
        prev = line_hash(directory, lines[i])
    write_lines(directory, lines)


def append_record(directory: Path, record: dict[str, object]) -> None:
    """Append a record that continues the chain, to the newest segment."""
    lines = lines_of(directory)
    prev = line_hash(directory, lines[-1]) if lines else GENESIS
    line = canonical_json({"prev": prev, "rec": record, "seq": len(lines)})
    newest = list_segments(directory)[-1]
    with open(newest.path, "ab") as f:
        f.write(line + b"\n")


def delete_derived(directory: Path) -> None:
    """Delete the checkpoint, index and tree files, as if the log had never signed anything."""
    for pattern in ("*.checkpoints", "*.index*"):
        for path in directory.glob(pattern):
            path.unlink()
    shutil.rmtree(directory / "tree", ignore_errors=True)


def line_hash(directory: Path, line: bytes) -> str:
    """The line hash as the log computes it: the attacker reads the log's format too."""
    marker = directory / "format"
    log_format = int(marker.read_text()) if marker.exists() else 1
    entry = line if log_format == 1 else hashlib.sha256(line).digest()
    return hashlib.sha256(b"\x00" + entry).hexdigest()
