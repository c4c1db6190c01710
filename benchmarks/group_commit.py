"""The floor of durable appends: the least a group-committing writer can do.

One thread takes every payload queued so far, appends them with one ``write`` and makes them
durable with one ``fsync``, then resolves their futures. No encoding, hashing or signing: what
is left is the disk and the hand-off between threads, which is what the signed log's sync
durability is compared with.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from pathlib import Path


class GroupCommitFile:
    """Append-only file whose writes resolve once fsynced; concurrent writes share an fsync."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Condition()
        self._pending: list[tuple[bytes, Future[None]]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="bench-group-commit", daemon=True)
        self._thread.start()

    def write(self, payload: bytes) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the file is closed")
            self._pending.append((payload, future))
            self._lock.notify()
        return future

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join()
        os.close(self._fd)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            os.write(self._fd, b"".join(payload for payload, _ in batch))
            os.fsync(self._fd)
            for _, future in batch:
                future.set_result(None)
