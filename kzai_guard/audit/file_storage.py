"""The file storage of an audit log: one directory on local disk, shared by every process of
the host (the layout is in :mod:`~kzai_guard.audit.segments`).

Appends are sequenced under an exclusive ``flock`` on ``AUDIT_DIR/.lock``, taken per batch on
a descriptor this process opened itself (``flock`` belongs to the open file description, so
one inherited over ``fork`` would share the parent's lock). The lock holder learns the head
from ``AUDIT_DIR/head``, a small checksummed file every batch rewrites after its lines and tree
hashes: one ``pread`` compared with what this process last saw, and the active segment's
length compared with the head's, tell it whether anyone else appended, rotated or crashed
since. A head that is torn, missing, or disagrees with the segment (a writer was killed between
its lines and its head) is rebuilt from the files by :func:`~kzai_guard.audit.file_repair.recover`,
which adopts complete chained lines and cuts a torn tail. The head file is derived data: it is
never fsynced, and opening the directory checks it against the files.

Files are made 0600 and directories 0700 whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from kzai_guard.audit.adoption import TAIL_MARK_FILE, adoption, mark_tail
from kzai_guard.audit.checkpoint import Checkpoint, SignedCheckpoint
from kzai_guard.audit.file_head import HeadFile, encode_head, parse_head
from kzai_guard.audit.file_repair import recover
from kzai_guard.audit.index import Indexer, unindexed
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.leaf import DEFAULT_FORMAT, check_format
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.retention import prune
from kzai_guard.audit.segments import (
    FORMAT_FILE,
    ORIGIN_FILE,
    Segment,
    fsync_directory,
    list_segments,
    read_anchor,
    read_format,
    read_origin,
    segment_paths,
)
from kzai_guard.audit.storage import LogHead, next_edge
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError, ConfigurationError

__all__ = ["FILE_MODE", "FileStorage", "private_directory"]

_log = logging.getLogger("kzai_guard.audit")

FILE_MODE = 0o600
"""The mode of every file the log creates."""
DIRECTORY_MODE = 0o700
LOCK_FILE = ".lock"
OPEN_FILE = ".open"
HEAD_FILE = "head"
_HEAD_READ = 1 << 16


def private_directory(path: Path) -> None:
    """Make ``path`` (and missing parents) a directory only its owner can enter."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIRECTORY_MODE:
        with contextlib.suppress(PermissionError):
            os.chmod(path, DIRECTORY_MODE)


def _open_private(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, FILE_MODE)
    return fd


class FileStorage:
    """A log directory as one process holds it; while sequenced, it is the :class:`Appending`.

    Open with :meth:`open`. Any number of processes may hold the same directory.
    """

    def __init__(
        self,
        directory: Path,
        origin: str,
        *,
        segment_max_bytes: int,
        segment_max_age_s: float,
        retention_days: float | None,
        log_format: int = DEFAULT_FORMAT,
    ) -> None:
        self.directory = directory
        self.origin = origin
        self.format = log_format
        self._segment_max_bytes = segment_max_bytes
        self._segment_max_age = segment_max_age_s
        self._retention_days = retention_days
        self.head = LogHead(0, bytes(32), (), None, 0.0, 0)
        self._key: Callable[[], Signer] | None = None
        self._keyring: Keyring | None = None
        self._tail_limit = 0
        self._reset()

    def _reset(self) -> None:
        """Forget every descriptor (a new process starts here)."""
        self._pid = os.getpid()
        self._lock_fd = -1
        self._open_fd = -1
        self._head_fd = -1
        self._fd = -1
        self._tree_files = TreeFiles(self.directory, writable=True)
        self._indexer = Indexer()
        self._seg: Segment = segment_paths(self.directory, 0)
        self._seg_bytes = 0
        self._seg_started = 0.0
        self._head_bytes = b""
        self._trusted = False
        """Whether :attr:`head` was read or written by this process under the lock."""
        self._dirty = False
        """Whether a failed write may have left the files in doubt: the next hold repairs."""

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        origin: str | None = None,
        segment_max_bytes: int = 64 * 1024 * 1024,
        segment_max_age_s: float = 86_400.0,
        retention_days: float | None = None,
        log_format: int = DEFAULT_FORMAT,
    ) -> FileStorage:
        """Open (creating if needed) the log directory and check its head against its files.

        A new log is made in ``log_format`` (:mod:`kzai_guard.audit.leaf`); an existing one
        keeps the format it was made in. Raises :class:`~kzai_guard.errors.AuditLogError` if
        the directory cannot be used.
        """
        path = Path(directory)
        try:
            private_directory(path)
            lock_fd = _open_private(path / LOCK_FILE, os.O_RDWR)
        except OSError as exc:
            raise AuditLogError(f"cannot open audit log directory {path}: {exc}") from exc
        storage: FileStorage | None = None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                log_origin = _origin(path, origin, check_format(log_format))
                private_directory(path / "tree")
                storage = cls(
                    path,
                    log_origin,
                    segment_max_bytes=segment_max_bytes,
                    segment_max_age_s=segment_max_age_s,
                    retention_days=retention_days,
                    log_format=read_format(path),
                )
                storage._lock_fd = lock_fd
                storage._open_files()
                storage._check_on_open()
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
        except BaseException as exc:
            if storage is not None:
                storage.close()
            else:
                os.close(lock_fd)
            if isinstance(exc, OSError):
                raise AuditLogError(f"cannot open audit log {path}: {exc}") from exc
            raise
        return storage

    # ------------------------------------------------------------------ honest records

    def vouch_with(self, key: Callable[[], Signer], keyring: Keyring, tail_limit: int) -> None:
        """Let this process mark unsigned tails and sign pruning anchors with ``key()`` (the
        writer's current key), and judge the files with ``keyring`` and ``tail_limit`` (the
        writers' ``checkpoint_every``) before anything is signed over them; see
        :mod:`kzai_guard.audit.adoption`."""
        self._key = key
        self._keyring = keyring
        self._tail_limit = tail_limit

    def judge(self) -> None:
        """Raise :class:`~kzai_guard.errors.AuditLogError` unless the files hold only what
        writers wrote (call under :meth:`sequence`); clears a mark no tail needs."""
        if self._keyring is None or self._key is None:
            return
        # every key this process's writer used stays trusted: after a key change the newest
        # checkpoint may still be the old key's
        keyring = self._keyring
        keyring.add(self._key().public_key)
        head = self.head
        anchor = read_anchor(self.directory)

        def root_at(size: int) -> bytes:
            if size == head.size:
                return CompactRange(head.size, head.edge).root()
            if size == 0:
                return CompactRange().root()
            if anchor is not None and size == anchor.size:
                return CompactRange(anchor.size, anchor.range).root()
            return self._tree_files.compact_range(size).root()

        found = adoption(
            self.directory,
            keyring,
            size=head.size,
            active_first=self._seg.first,
            root_at=root_at,
            tail_limit=self._tail_limit,
        )
        found.check(self.directory)

    def mark_writing(self) -> None:
        """Sign "a writer appends after the newest checkpoint" before this process writes
        (call under :meth:`sequence`, once the head is covered by a checkpoint); the last
        process to close the log cleanly empties it again."""
        head = self.head
        if self._key is None or head.size != head.checkpoint_size:
            return
        root = CompactRange(head.size, head.edge).root()
        mark_tail(self.directory, Checkpoint(self.origin, head.size, root), self._key())

    # ------------------------------------------------------------------ sequencing

    @contextlib.contextmanager
    def sequence(self) -> Iterator[FileStorage]:
        """Hold the directory's lock for one batch; the storage is the hold."""
        if self._pid != os.getpid():
            self.after_fork()
        if self._lock_fd < 0:
            self._open_files()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            self._learn_head()
            yield self
        except BaseException:
            self._dirty = True
            raise
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @property
    def room(self) -> int:
        """Bytes the next append may add to the active segment; 0 once it should rotate."""
        if self._seg_bytes and (
            self._seg_bytes >= self._segment_max_bytes
            or time.time() - self._seg_started >= self._segment_max_age
        ):
            return 0
        return self._segment_max_bytes - self._seg_bytes

    def append(
        self,
        lines: Sequence[bytes],
        hashes: Sequence[bytes],
        nodes: Sequence[Sequence[bytes]],
        durable: bool,
    ) -> None:
        """Write ``lines`` with one write (and one ``fdatasync`` if ``durable``), then their
        tree hashes and the head. On failure the segment and tree are cut back and the
        ``OSError`` raised."""
        if not lines:
            if durable:
                os.fdatasync(self._fd)
            return
        head = self.head
        data = b"\n".join(lines) + b"\n"
        levels = {0: bytearray(b"".join(hashes))}
        for level, level_nodes in enumerate(nodes, 1):
            levels[level] = bytearray(b"".join(level_nodes))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if durable:
                os.fdatasync(self._fd)
            self._tree_files.append(levels)
        except OSError:
            self._dirty = True
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._seg_bytes)
                self._tree_files.truncate(head.size)
            raise
        self._seg_bytes += len(data)
        self.head = LogHead(
            head.size + len(hashes),
            hashes[-1],
            next_edge(head.size, head.edge, hashes, nodes),
            head.checkpoint,
            head.checkpoint_time,
            head.erasures,
        )
        self._write_head()

    def add_checkpoint(self, signed: SignedCheckpoint, durable: bool) -> None:
        """Append ``signed`` to the active segment's checkpoints, the lines it covers synced
        first, and make it the head's newest checkpoint."""
        try:
            os.fdatasync(self._fd)
            fd = _open_private(self._seg.checkpoints, os.O_WRONLY | os.O_APPEND)
            try:
                view = memoryview((signed.note() + "\n").encode())
                while view:
                    view = view[os.write(fd, view) :]
                if durable:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError:
            self._dirty = True  # a torn note is cut off by the repair
            raise
        head = self.head
        self.head = LogHead(head.size, head.prev, head.edge, signed, time.time(), head.erasures)
        self._write_head()

    def note_erasure(self) -> None:
        """Bump the head's erasure counter."""
        head = self.head
        self.head = LogHead(
            head.size,
            head.prev,
            head.edge,
            head.checkpoint,
            head.checkpoint_time,
            head.erasures + 1,
        )
        self._write_head()

    def rotate(self) -> None:
        """Seal the active segment and start the next; prune and index the sealed ones."""
        if self._seg_bytes == 0:
            return
        self._dirty = True  # until the new segment is in place
        os.fsync(self._fd)
        self._tree_files.sync()
        sealed = self._seg
        # the head names the new segment before it exists: a crash in between is repaired
        self._seg = segment_paths(self.directory, self.head.size)
        self._seg_bytes = 0
        self._seg_started = time.time()
        self._write_head()
        os.close(self._fd)
        self._fd = -1
        self._fd = _open_private(self._seg.path, os.O_WRONLY | os.O_APPEND)
        fsync_directory(self.directory)
        self._dirty = False
        self._indexer.add([sealed])
        if self._retention_days is not None and self._key is not None:
            try:
                prune(self.directory, signer=self._key(), keep_days=self._retention_days)
            except (OSError, AuditLogError):
                _log.exception("pruning old audit segments failed")

    # ------------------------------------------------------------------ the head

    def _learn_head(self) -> None:
        if self._dirty:
            self._repair()
            return
        data = os.pread(self._head_fd, _HEAD_READ, 0)
        if (
            self._trusted
            # a shorter head leaves old bytes after its digest: the prefix is what counts
            and data.startswith(self._head_bytes)
            and os.fstat(self._fd).st_size == self._seg_bytes
        ):
            return
        if not self._adopt(data):
            _log.warning("audit log %s: repairing after an interrupted writer", self.directory)
            self._repair()

    def _adopt(self, data: bytes) -> bool:
        """Take the head another writer left, if the active segment agrees with it."""
        parsed = parse_head(data)
        if parsed is None:
            return False
        head, first, seg_bytes, started = parsed
        if first != self._seg.first or self._fd < 0:
            seg = segment_paths(self.directory, first)
            try:
                fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
            except FileNotFoundError:
                return False
            if self._fd >= 0:
                os.close(self._fd)
            self._fd, self._seg = fd, seg
        if os.fstat(self._fd).st_size != seg_bytes:
            return False
        self.head = head
        self._seg_bytes = seg_bytes
        self._seg_started = started
        self._head_bytes = data
        self._trusted = True
        return True

    def _repair(self) -> None:
        """Rebuild the head from the files (adopting complete lines, cutting a torn tail)."""
        self._tree_files.close()
        found = recover(self.directory, self._tree_files, self.format)
        if self._fd < 0 or found.segment != self._seg:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._fd = _open_private(found.segment.path, os.O_WRONLY | os.O_APPEND)
        self._seg = found.segment
        self._seg_bytes = found.segment_bytes
        self._seg_started = found.segment_started
        parsed = parse_head(os.pread(self._head_fd, _HEAD_READ, 0))
        # an erasure's bump may be in a head that was lost: change the counter either way, to a
        # value no process can have seen when the old one is unreadable
        erasures = parsed.head.erasures if parsed is not None else time.time_ns()
        self.head = LogHead(
            found.tree.size,
            bytes.fromhex(found.prev),
            tuple(found.tree.hashes),
            found.checkpoint,
            0.0,
            erasures + 1,
        )
        self._write_head()
        fsync_directory(self.directory)
        self._dirty = False
        # a writer signs over what a repair adopts: only what writers wrote may be adopted
        self.judge()

    def _check_on_open(self) -> None:
        """The first process to open the directory replays the active segment, as after a
        crash: the head file is never fsynced, so after a power failure it may disagree with
        the files. A process joining others that hold it open takes their head, as a batch
        would (a worker's restart does not stall the others for a replay)."""
        if (
            self._open_fd >= 0
            and self._others_hold_open()
            and self._adopt(os.pread(self._head_fd, _HEAD_READ, 0))
        ):
            return
        self._repair()
        anchor = read_anchor(self.directory)
        start = anchor.size if anchor is not None else 0
        self._indexer.add(unindexed([s for s in list_segments(self.directory) if s.first >= start]))

    def _others_hold_open(self) -> bool:
        """Whether another process holds the directory open (its shared lock on ``.open``)."""
        try:
            fcntl.flock(self._open_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # converting a lock first drops it (flock(2)): take the shared lock back
            fcntl.flock(self._open_fd, fcntl.LOCK_SH)
            return True
        fcntl.flock(self._open_fd, fcntl.LOCK_SH)
        return False

    def _write_head(self) -> None:
        head = self.head
        data = encode_head(HeadFile(head, self._seg.first, self._seg_bytes, self._seg_started))
        try:
            os.pwrite(self._head_fd, data, 0)
        except OSError:
            self._dirty = True
            raise
        self._head_bytes = data
        self._trusted = True

    # ------------------------------------------------------------------ processes

    def _open_files(self) -> None:
        if self._lock_fd < 0:
            self._lock_fd = _open_private(self.directory / LOCK_FILE, os.O_RDWR)
        self._head_fd = _open_private(self.directory / HEAD_FILE, os.O_RDWR)
        # held shared while this process has the directory open (see _check_on_open)
        self._open_fd = _open_private(self.directory / OPEN_FILE, os.O_RDWR)
        fcntl.flock(self._open_fd, fcntl.LOCK_SH)

    def after_fork(self) -> None:
        """Close this (child) process's copies of the parent's descriptors and start afresh."""
        for fd in (self._lock_fd, self._head_fd, self._fd, self._open_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        with contextlib.suppress(OSError):
            self._tree_files.close()
        self._reset()

    def close(self) -> None:
        """Wait for the indexes being built and close the files; the log stays as it is."""
        if self._pid != os.getpid():
            self.after_fork()
        self._indexer.close()
        with contextlib.suppress(OSError):
            self._tree_files.close()
        head = self.head
        if (
            self._key is not None
            and self._open_fd >= 0
            and head.size == head.checkpoint_size
            and not self._dirty
        ):
            with contextlib.suppress(OSError):
                if not self._others_hold_open():
                    # the last writer leaves every record covered: no mark stays at rest
                    _clear_mark(self.directory)
        for fd in (self._fd, self._head_fd, self._lock_fd, self._open_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._head_fd = self._lock_fd = self._open_fd = -1
        self._trusted = False


def _clear_mark(directory: Path) -> None:
    """Empty the unsigned-tail mark: nothing is uncovered, so no mark stays at rest (the file
    stays, so the next mark needs no directory sync)."""
    with contextlib.suppress(FileNotFoundError):
        os.truncate(directory / TAIL_MARK_FILE, 0)


def _origin(directory: Path, wanted: str | None, log_format: int) -> str:
    existing = read_origin(directory)
    if existing is not None:
        if wanted is not None and wanted != existing:
            raise ConfigurationError(
                f"audit log {directory} has origin {existing!r}, not {wanted!r}; "
                "pass the existing origin or open a new directory"
            )
        return existing
    origin = wanted or f"kzai-guard.invalid/audit/{uuid.uuid4().hex[:16]}"
    if "\n" in origin or not origin.strip():
        raise ConfigurationError("the log origin must be one non-empty line")
    if not (directory / FORMAT_FILE).exists() and not list_segments(directory):
        # the format goes first: a log whose origin exists has its format settled
        _write_private(directory, FORMAT_FILE, f"{log_format}\n".encode())
    _write_private(directory, ORIGIN_FILE, (origin + "\n").encode())
    return origin


def _write_private(directory: Path, name: str, data: bytes) -> None:
    """Replace ``directory/name`` with ``data`` atomically and durably, mode 0600."""
    tmp = directory / (name + ".tmp")
    fd = _open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / name)
    fsync_directory(directory)
