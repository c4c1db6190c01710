"""Transports that write lines: to a file, or to standard output."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from kzai_guard.siem.transports._base import TransportError

__all__ = ["FileTransport", "StdoutTransport"]


class FileTransport:
    """Appends each message and a line feed to a file; ``fsync`` after every batch.

    With ``durable=False`` the batch is flushed to the operating system but not synced (for
    one-off exports, where a crash means running the export again).
    """

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self._durable = durable
        self._file: BinaryIO | None = None

    def send(self, messages: Sequence[bytes]) -> None:
        """Append the batch, one message per line."""
        try:
            if self._file is None:
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across batches
            self._file.write(b"".join(m + b"\n" for m in messages))
            self._file.flush()
            if self._durable:
                os.fsync(self._file.fileno())
        except OSError as exc:
            self.close()
            raise TransportError(f"cannot write {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


class StdoutTransport:
    """Writes each message and a line feed to standard output."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream

    def send(self, messages: Sequence[bytes]) -> None:
        """Write and flush the batch."""
        stream = self._stream or sys.stdout.buffer
        try:
            stream.write(b"".join(m + b"\n" for m in messages))
            stream.flush()
        except OSError as exc:
            raise TransportError(f"cannot write to standard output: {exc}") from exc

    def close(self) -> None:
        """Flush; standard output stays open."""
        stream = self._stream or sys.stdout.buffer
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
