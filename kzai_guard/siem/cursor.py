"""The shipper's cursor: the last event a receiver acknowledged, kept on disk.

The file holds one JSON object, ``{"seq", "uid", "line_hash"}``. It is replaced atomically: the
new content goes to a temporary file in the same directory, which is flushed and ``fsync``-ed,
renamed over the old file with :func:`os.replace`, and the directory is ``fsync``-ed so that the
rename itself survives a crash. A reader therefore sees either the old or the new cursor, never
a torn one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from kzai_guard.errors import KzaiGuardError

__all__ = ["CursorError", "CursorFile", "Position"]


class CursorError(KzaiGuardError):
    """Raised when the cursor file is unreadable or does not belong to the log."""


@dataclass(frozen=True, slots=True)
class Position:
    """The last event delivered: its sequence number, uid and line hash."""

    seq: int
    uid: str
    line_hash: str


class CursorFile:
    """Loads and atomically saves a :class:`Position`.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ship.cursor"
    >>> cursor = CursorFile(path)
    >>> cursor.load() is None
    True
    >>> cursor.save(Position(41, "r41:41", "ab"))
    >>> cursor.load()
    Position(seq=41, uid='r41:41', line_hash='ab')
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> Position | None:
        """The saved position, or ``None`` when nothing was shipped yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CursorError(f"cannot read the cursor {self.path}: {exc}") from exc
        try:
            value = orjson.loads(data)
            position = Position(int(value["seq"]), str(value["uid"]), str(value["line_hash"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CursorError(
                f"the cursor {self.path} is damaged ({exc}); remove it to ship the whole log "
                "again, or write the last delivered seq into it"
            ) from exc
        if position.seq < 0:
            raise CursorError(f"the cursor {self.path} holds a negative seq")
        return position

    def save(self, position: Position) -> None:
        """Replace the cursor with ``position``, durably and atomically."""
        data = orjson.dumps(
            {"seq": position.seq, "uid": position.uid, "line_hash": position.line_hash}
        )
        directory = self.path.parent
        temp = directory / f".{self.path.name}.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
