"""The signed, tamper-evident audit log: the production :class:`~kzai_guard.audit.sink.AuditSink`.

One writer thread takes records from a queue, seals their personal fields, encodes each as one
canonical JSON line chained to the line before it, appends the lines to the active segment,
extends the RFC 9162 tree (:class:`~kzai_guard.audit.merkle.CompactRange` plus the per-level
hash files) and signs a checkpoint every ``checkpoint_every`` records or
``checkpoint_interval_ms`` milliseconds, and at close.

Durability:

- ``"sync"``: :meth:`AuditLog.write` returns a :class:`~concurrent.futures.Future` that resolves
  once the record is fsynced. Records queued while one batch is being written share the next
  fsync (group commit).
- ``"async"``: ``write`` returns ``None`` once the record is queued. The queue is bounded:
  a full queue blocks the caller up to ``put_timeout`` seconds (backpressure), then refuses.
  Everything queued is written before :meth:`AuditLog.close` returns.

When the log cannot be written (disk full, read-only file system, I/O error) :attr:`healthy`
turns false and ``write`` raises :class:`~kzai_guard.errors.AuditUnavailable`. Sync writers get
the error through their future; records accepted in async mode are kept and retried, and
:meth:`close` raises :class:`~kzai_guard.errors.AuditLogError` if any could still not be written.
Nothing is dropped silently.

On open the log repairs a crash: a torn last line is cut off, the chain and tree are rebuilt
from the last segment, and a checkpoint is signed over what was recovered, but only once the
files are shown to hold nothing but what writers wrote (:mod:`kzai_guard.audit.adoption`):
a log never signs over records it did not write.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import fcntl
import logging
import operator
import os
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

from kzai_guard.audit.adoption import TAIL_MARK_FILE, Adoption, adoption, mark_tail
from kzai_guard.audit.checkpoint import Checkpoint, SignedCheckpoint, read_notes
from kzai_guard.audit.index import Indexer, WrittenIds, line_id, unindexed
from kzai_guard.audit.keys import Keyring, PublicKey, Signer, write_keypair
from kzai_guard.audit.lines import LineEncoder
from kzai_guard.audit.merkle import CompactRange, leaf_hash
from kzai_guard.audit.reader import DEFAULT_SUBJECT_KEYS, hash_of_last_line
from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.retention import DEFAULT_RETENTION_DAYS, prune
from kzai_guard.audit.segments import (
    GENESIS,
    ORIGIN_FILE,
    Segment,
    fsync_directory,
    list_segments,
    parse_line,
    read_anchor,
    read_origin,
    segment_paths,
)
from kzai_guard.audit.shredding import (
    BatchedSubjectKeys,
    ReservedSubjectKeys,
    Sealer,
    SqliteSubjectKeys,
    SubjectKeys,
    subject_ref,
)
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError, AuditUnavailable, ConfigurationError

__all__ = ["AuditLog", "Durability"]

_log = logging.getLogger("kzai_guard.audit")

Durability = Literal["sync", "async"]

DEMO_KEY_DIR = "keys"
DEMO_KEY_NAME = "kzai-guard-demo"
_LOCK_FILE = ".lock"
_RETRY_SECONDS = 1.0
_LINGER_SECONDS = 0.005
_LINGER_BELOW = 4096
_REPLAY_IDS = 4096
"""Ids of replayed lines handed to the active segment's :class:`WrittenIds` at a time."""
_record_id = operator.attrgetter("id")


class _Op(enum.Enum):
    RECORD = 0
    FLUSH = 1
    CHECKPOINT = 2
    ROTATE = 3
    SIGNER = 4
    ERASE = 5


_Item = tuple[_Op, Any, "Future[None] | None"]


class AuditLog:
    """An append-only, hash-chained, Merkle-tree, checkpoint-signed audit log on local disk.

    Open one with :meth:`open`; one process may hold a directory open at a time.

    >>> log = AuditLog.open("/var/lib/app/audit", durability="sync")  # doctest: +SKIP
    >>> log.write(record).result()  # doctest: +SKIP
    >>> log.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: Path,
        *,
        signer: Signer,
        durability: Durability,
        checkpoint_every: int,
        checkpoint_interval_ms: int,
        subject_keys: SubjectKeys | None,
        origin: str,
        queue_limit: int,
        put_timeout: float,
        segment_max_bytes: int,
        segment_max_age_s: float,
        retention_days: float | None,
    ) -> None:
        self.directory = directory
        self.durability = durability
        self.origin = origin
        self._signer = signer
        self._sync = durability == "sync"
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval_ms / 1000.0
        self._subject_keys = subject_keys
        self._batched_keys = subject_keys if isinstance(subject_keys, BatchedSubjectKeys) else None
        self._reserved_keys = (
            subject_keys if isinstance(subject_keys, ReservedSubjectKeys) else None
        )
        # (ref, key number) of the replayed lines: assignments a crash may have taken away
        self._assignments: list[tuple[str, int]] = []
        self._sealer = Sealer(subject_keys) if subject_keys is not None else None
        self._encoder = LineEncoder(self._sealer)
        self._queue_limit = queue_limit
        self._put_timeout = put_timeout
        self._segment_max_bytes = segment_max_bytes
        self._segment_max_age = segment_max_age_s
        self._retention_days = retention_days

        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._items: collections.deque[Any] = collections.deque()
        self._tuples = 0
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self._unwritten: list[AuditRecord] = []

        self._lock_fd = -1
        self._owned_keys: SqliteSubjectKeys | None = None
        self._seg: Segment = segment_paths(directory, 0)
        self._fd = -1
        self._seg_bytes = 0
        self._seg_started = time.time()
        self._seq = 0
        self._prev = GENESIS
        self._tree = CompactRange()
        self._tree_files = TreeFiles(directory, writable=True)
        self._levels: dict[int, bytearray] = collections.defaultdict(bytearray)
        self._cp_size = 0
        self._cp_time = time.monotonic()
        self._last_checkpoint: SignedCheckpoint | None = None
        self._trusted = Keyring([signer.public_key])
        self._marked = -1
        """The checkpoint size the unsigned-tail mark names (-1: none written by this log)."""
        self._mark_on_disk = True
        """Whether an unsigned-tail mark may be on disk (one left by an earlier writer, too)."""
        self._indexer = Indexer()
        self._written = WrittenIds(0)
        self._writer = threading.Thread(target=self._run, name="kzai-audit-writer", daemon=True)
        self._writing = False
        """True from just before the writer starts until it stops, however it stops: what
        :attr:`healthy` reads instead of asking the thread on every decision."""

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        signer: Signer | None = None,
        durability: Durability = "async",
        checkpoint_every: int = 10_000,
        checkpoint_interval_ms: int = 1_000,
        subject_keys: SubjectKeys | None = None,
        seal_personal_fields: bool = True,
        origin: str | None = None,
        queue_limit: int = 65_536,
        put_timeout: float = 5.0,
        segment_max_bytes: int = 64 * 1024 * 1024,
        segment_max_age_s: float = 86_400.0,
        retention_days: float | None = DEFAULT_RETENTION_DAYS,
        previous_keys: Iterable[PublicKey] = (),
    ) -> AuditLog:
        """Open (creating if needed) the log in ``directory``, repairing a crashed tail.

        ``signer`` signs checkpoints; without one, a demo key is made on first open in
        ``directory/keys`` (convenient, but anyone who can write the directory can then re-sign
        it: configure a real key in production). ``subject_keys`` holds the per-subject keys of
        the sealed personal fields (default: ``directory/subject-keys.sqlite3``);
        ``seal_personal_fields=False`` writes them in clear. Segments rotate at
        ``segment_max_bytes`` or ``segment_max_age_s``; sealed segments older than
        ``retention_days`` (default 183) are pruned at rotation (``None`` keeps everything).

        Before it signs anything the log checks that the directory holds only what writers
        wrote (:mod:`kzai_guard.audit.adoption`): the newest checkpoint must be signed by
        ``signer`` or one of ``previous_keys`` (the public keys used before a key change) and
        match the records; records after it are adopted only as a crash leaves them.
        Raises :class:`~kzai_guard.errors.AuditLogError` if the directory cannot be used or
        holds anything else (``kzai-guard repair`` shows what).
        """
        if durability not in ("sync", "async"):
            raise ConfigurationError(f"durability must be 'sync' or 'async', not {durability!r}")
        if checkpoint_every < 1 or checkpoint_interval_ms < 1 or queue_limit < 1:
            raise ConfigurationError(
                "checkpoint_every, checkpoint_interval_ms and queue_limit must be positive"
            )
        if retention_days is not None and retention_days < DEFAULT_RETENTION_DAYS:
            raise ConfigurationError(
                f"retention_days={retention_days} is below the legal minimum of six months; "
                f"use at least {DEFAULT_RETENTION_DAYS} or None"
            )
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise AuditLogError(f"cannot open audit log directory {path}: {exc}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock_fd)
            raise AuditLogError(f"audit log {path} is already open in another process") from exc
        owned: SqliteSubjectKeys | None = None
        log: AuditLog | None = None
        try:
            log_origin = _origin(path, origin)
            if signer is None:
                signer = _demo_signer(path)
            if subject_keys is None and seal_personal_fields:
                subject_keys = owned = SqliteSubjectKeys(
                    path / DEFAULT_SUBJECT_KEYS, reserve_keys=durability == "sync"
                )
            log = cls(
                path,
                signer=signer,
                durability=durability,
                checkpoint_every=checkpoint_every,
                checkpoint_interval_ms=checkpoint_interval_ms,
                subject_keys=subject_keys if seal_personal_fields else None,
                origin=log_origin,
                queue_limit=queue_limit,
                put_timeout=put_timeout,
                segment_max_bytes=segment_max_bytes,
                segment_max_age_s=segment_max_age_s,
                retention_days=retention_days,
            )
            log._lock_fd = lock_fd
            log._owned_keys = owned
            log._trusted = Keyring([signer.public_key, *previous_keys])
            log._recover()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if owned is not None:
                    owned.close()
            if log is not None:
                log._tree_files.close()
                if log._fd >= 0:
                    os.close(log._fd)
            os.close(lock_fd)
            if isinstance(exc, OSError):
                raise AuditLogError(f"cannot open audit log {path}: {exc}") from exc
            raise
        log._writing = True
        log._writer.start()
        return log

    def _recover(self) -> None:
        self._replay_segments()
        if self._reserved_keys is not None and self._reserved_keys.needs_reserve():
            self._reserved_keys.reserve()

    def _replay_segments(self) -> None:
        segments = list_segments(self.directory)
        anchor = read_anchor(self.directory)
        if not segments:
            first = anchor.size if anchor else 0
            if anchor is not None:
                self._prev = anchor.prev
                self._tree = CompactRange(anchor.size, anchor.range)
            found = self._judge(first, anchor)
            self._start_segment(first)
            self._cp_size = found.signed_size
            self._last_checkpoint = found.checkpoint
            return
        last = segments[-1]
        first = last.first
        tree = self._tree_files
        if tree.count(0) < first or not self._index_agrees(segments, anchor):
            self._rebuild_tree(segments, anchor)
        tree.truncate(first)
        if anchor is not None and first == anchor.size and tree.count(0) < first:
            self._tree = CompactRange(anchor.size, anchor.range)
        else:
            self._tree = tree.compact_range(first)
        if first == 0:
            self._prev = GENESIS
        elif anchor is not None and first == anchor.size:
            self._prev = anchor.prev
        else:
            self._prev = tree.leaf(first - 1).hex()
        self._seq = first
        self._written = WrittenIds(first)
        good, started = self._replay(last, self._written)
        if self._reserved_keys is not None:
            self._reserved_keys.recover(self._assignments)
        self._assignments = []
        self._seg = last
        self._seg_started = started
        with open(last.path, "r+b") as f:
            f.truncate(good)
        self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
        self._seg_bytes = good
        self._flush_levels()
        self._repair_checkpoints(last, segments)
        self._judge(first, anchor)
        if self._tree.size > self._cp_size:
            self._write_checkpoint()
        else:
            self._clear_mark()
        start = anchor.size if anchor is not None else 0
        self._indexer.add(unindexed([s for s in segments if s.first >= start]))

    def _replay(self, seg: Segment, written: WrittenIds | None = None) -> tuple[int, float]:
        """Re-read a segment into the chain and tree; returns (good bytes, start time).

        ``written`` (for the active segment) gets the record ids of the lines, so that the
        segment need not be read again to be indexed when it is sealed.
        """
        data = seg.path.read_bytes()
        offset = 0
        started = time.time()
        ids: list[str] = []
        while True:
            end = data.find(b"\n", offset)
            if end < 0:
                break
            line = data[offset:end]
            try:
                value = parse_line(line)
                ok = value["seq"] == self._seq and value["prev"] == self._prev
            except ValueError:
                ok = False
            if not ok:
                if data.find(b"\n", end + 1) >= 0:
                    raise AuditLogError(
                        f"{seg.path}: line for seq {self._seq} does not continue the chain and "
                        "is followed by more lines; the log was damaged, not torn by a crash. "
                        "Run `kzai-guard verify` on it."
                    )
                break
            sealed = value.get("sealed")
            if isinstance(sealed, dict) and isinstance(sealed.get("key"), int):
                self._assignments.append((str(sealed.get("ref")), sealed["key"]))
            if offset == 0:
                with contextlib.suppress(KeyError, TypeError):
                    started = int(value["rec"]["time"]) / 1_000_000
            h = leaf_hash(line)
            self._tree.append(h, self._on_node)
            self._levels[0] += h
            self._prev = h.hex()
            self._seq += 1
            offset = end + 1
            if written is not None and written.complete:
                record_id = line_id(line, value["rec"])
                if record_id is None:
                    written.complete = False  # its index is built from the file
                else:
                    ids.append(record_id)
                    if len(ids) == _REPLAY_IDS:
                        written.add(ids, h)
                        ids = []
        if written is not None and ids:
            written.add(ids, bytes.fromhex(self._prev))
        return offset, started

    def _judge(self, active_first: int, anchor: Any) -> Adoption:
        """Refuse to go on unless the files are explained by writers (see ``adoption``)."""

        def root_at(size: int) -> bytes:
            if size == self._tree.size:
                return self._tree.root()
            if size == 0:
                return CompactRange().root()
            if anchor is not None and size == anchor.size:
                return CompactRange(anchor.size, anchor.range).root()
            return self._tree_files.compact_range(size).root()

        found = adoption(
            self.directory,
            self._trusted,
            size=self._tree.size,
            active_first=active_first,
            root_at=root_at,
            tail_limit=self._checkpoint_every,
        )
        found.check(self.directory)
        return found

    def _index_agrees(self, segments: list[Segment], anchor: Any) -> bool:
        """Whether the stored tree matches the sealed segments where they meet the active one."""
        first = segments[-1].first
        if len(segments) < 2 or first == 0 or (anchor is not None and first == anchor.size):
            return True
        previous = segments[-2]
        if self._tree_files.leaf(first - 1).hex() != hash_of_last_line(previous.path):
            return False
        for note in reversed(read_notes(previous.checkpoints)):
            if isinstance(note, SignedCheckpoint) and note.checkpoint.size == first:
                return bool(self._tree_files.compact_range(first).root() == note.checkpoint.root)
        return True

    def _rebuild_tree(self, segments: list[Segment], anchor: Any) -> None:
        if anchor is not None:
            raise AuditLogError(
                f"the tree hash files under {self.directory}/tree are incomplete and the log "
                "was pruned, so they cannot be rebuilt"
            )
        self._tree_files.truncate(0)
        self._tree = CompactRange()
        self._prev = GENESIS
        self._seq = 0
        for seg in segments[:-1]:
            if seg.first != self._seq:
                raise AuditLogError(f"segment {seg.path} does not start at seq {self._seq}")
            good, _ = self._replay(seg)
            if good != seg.path.stat().st_size:
                raise AuditLogError(f"sealed segment {seg.path} is damaged")
            self._flush_levels()

    def _repair_checkpoints(self, last: Segment, segments: list[Segment]) -> None:
        path = last.checkpoints
        notes: list[SignedCheckpoint] = []
        if path.exists():
            data = path.read_bytes()
            cut = data.rfind(b"\n\n")
            keep = cut + 2 if cut >= 0 else 0
            if keep != len(data):
                with open(path, "r+b") as f:
                    f.truncate(keep)
            notes = [n for n in read_notes(path) if isinstance(n, SignedCheckpoint)]
        if not notes and len(segments) > 1:
            notes = [
                n for n in read_notes(segments[-2].checkpoints) if isinstance(n, SignedCheckpoint)
            ]
        if notes:
            newest = max(notes, key=lambda n: n.checkpoint.size)
            if newest.checkpoint.size > self._tree.size:
                raise AuditLogError(
                    f"a signed checkpoint covers {newest.checkpoint.size} records but only "
                    f"{self._tree.size} survive in {self.directory}; records were lost"
                )
            self._cp_size = newest.checkpoint.size
            self._last_checkpoint = newest

    def _start_segment(self, first: int) -> None:
        seg = segment_paths(self.directory, first)
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fsync_directory(self.directory)
        self._seg = seg
        self._seg_bytes = os.fstat(self._fd).st_size
        self._seg_started = time.time()
        self._seq = first
        self._written = WrittenIds(first, complete=self._seg_bytes == 0)

    # ------------------------------------------------------------------ the sink API

    @property
    def healthy(self) -> bool:
        """False while records cannot be written, and after :meth:`close`."""
        return self._error is None and not self._closing and self._writing

    @property
    def size(self) -> int:
        """How many records are on disk (written, not necessarily fsynced)."""
        return self._tree.size

    @property
    def last_checkpoint(self) -> SignedCheckpoint | None:
        """The newest checkpoint signed by this log."""
        return self._last_checkpoint

    @property
    def signer(self) -> Signer:
        """The key that signs the next checkpoint."""
        return self._signer

    def write(self, record: AuditRecord) -> Future[None] | None:
        """Queue one record; in ``sync`` mode the future resolves once it is fsynced.

        Raises :class:`~kzai_guard.errors.AuditUnavailable` if the log is closed, unhealthy, or
        (``async``) its queue stayed full for ``put_timeout`` seconds.
        """
        if self._sync:
            future: Future[None] = Future()
            self._put((_Op.RECORD, record, future))
            return future
        with self._lock:
            # the common case inline; _put handles closing, errors and a full queue
            items = self._items  # read under the lock: the writer swaps in a fresh deque
            if len(items) < self._queue_limit and not self._closing and self._error is None:
                items.append(record)
                if len(items) == 1:
                    self._not_empty.notify()
                return None
        self._put(record)
        return None

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is written (and fsynced in ``sync`` mode)."""
        future: Future[None] = Future()
        self._put((_Op.FLUSH, None, future), control=True)
        future.result(timeout)

    def checkpoint(self, timeout: float | None = None) -> SignedCheckpoint | None:
        """Write what is queued and sign a checkpoint now; returns it (``None`` if empty)."""
        future: Future[None] = Future()
        self._put((_Op.CHECKPOINT, None, future), control=True)
        future.result(timeout)
        return self._last_checkpoint

    def rotate_segment(self, timeout: float | None = None) -> None:
        """Seal the active segment (with a checkpoint) and start a new one now."""
        future: Future[None] = Future()
        self._put((_Op.ROTATE, None, future), control=True)
        future.result(timeout)

    def rotate_key(self, signer: Signer, timeout: float | None = None) -> None:
        """Sign every checkpoint from the next one on with ``signer``.

        The records so far are first covered by a checkpoint of the old key. Keep the old
        public key in the verifiers' keyring: old checkpoints stay signed by it.
        """
        future: Future[None] = Future()
        self._put((_Op.SIGNER, signer, future), control=True)
        future.result(timeout)

    def erase_subject(self, pseudonym: str, timeout: float | None = None) -> None:
        """Crypto-shred one subject: erase the key sealing its personal fields.

        Records queued before the call are written first, so they are covered too.
        The records stay in the log and keep verifying; their personal fields read as
        :data:`~kzai_guard.audit.shredding.ERASED`.
        """
        if self._subject_keys is None:
            raise ConfigurationError("this log writes personal fields in clear; nothing to erase")
        future: Future[None] = Future()
        self._put((_Op.ERASE, subject_ref(pseudonym), future), control=True)
        future.result(timeout)

    def close(self) -> None:
        """Write everything queued, sign a final checkpoint and release the directory.

        Raises :class:`~kzai_guard.errors.AuditLogError` if accepted records could not be
        written. Later writes raise :class:`~kzai_guard.errors.AuditUnavailable`.
        """
        with self._lock:
            if self._closed:
                return
            self._closing = True
            self._not_empty.notify_all()
        self._writer.join()
        if self._error is None and self._tree.size == self._cp_size:
            with contextlib.suppress(OSError):
                self._clear_mark()
        self._indexer.close()
        self._closed = True
        lost = len(self._unwritten)
        error = self._error
        with contextlib.suppress(OSError):
            self._tree_files.close()
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if self._owned_keys is not None:
            with contextlib.suppress(Exception):
                self._owned_keys.close()
        elif self._batched_keys is not None:
            with contextlib.suppress(Exception):
                self._batched_keys.commit()
                if self._reserved_keys is not None:
                    self._reserved_keys.sync()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        if lost:
            raise AuditLogError(
                f"{lost} accepted audit records could not be written to {self.directory}: {error}"
            )

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _put(self, item: _Item | AuditRecord, control: bool = False) -> None:
        with self._lock:
            if self._closing:
                raise AuditUnavailable(f"the audit log {self.directory} is closed")
            if self._error is not None and not control:
                raise AuditUnavailable(
                    f"the audit log {self.directory} cannot be written: {self._error}"
                )
            if not self._sync and not control and len(self._items) >= self._queue_limit:
                deadline = time.monotonic() + self._put_timeout
                while len(self._items) >= self._queue_limit:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closing:
                        raise AuditUnavailable(
                            f"the audit log {self.directory} is {self._queue_limit} records "
                            f"behind for {self._put_timeout}s; refusing more"
                        )
                    self._not_full.wait(left)
            self._items.append(item)
            if type(item) is tuple:
                self._tuples += 1
            if len(self._items) == 1:
                self._not_empty.notify()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the writer must never die silently
            _log.exception("audit log writer stopped")
            with self._lock:
                self._error = exc
                items, self._items = self._items, collections.deque()
                self._not_full.notify_all()
            self._fail(items, exc)
        finally:
            self._writing = False

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._items and not self._closing:
                    timeout = self._wait_time()
                    if timeout == 0.0:
                        break
                    self._not_empty.wait(timeout)
                    if self._error is not None:
                        break  # time to retry
                linger = not self._sync and 0 < len(self._items) < _LINGER_BELOW
            if linger:
                # async callers do not wait for the disk: let a batch build up instead of
                # paying a wake-up and a write per record
                time.sleep(_LINGER_SECONDS)
            with self._lock:
                items, self._items = self._items, collections.deque()
                plain, self._tuples = self._tuples == 0, 0
                closing = self._closing
                self._not_full.notify_all()
            if self._error is not None:
                self._retry(items)
            elif items:
                self._handle(items, plain)
            if self._error is None:
                self._maybe_checkpoint()
            if closing:
                with self._lock:
                    more = bool(self._items)
                if more:
                    continue
                if self._error is not None:
                    self._retry(collections.deque())
                if self._error is None and self._tree.size > self._cp_size:
                    self._guarded(self._write_checkpoint)
                return

    def _wait_time(self) -> float | None:
        if self._error is not None:
            return _RETRY_SECONDS
        if self._tree.size == self._cp_size:
            return None
        return max(0.0, self._cp_time + self._checkpoint_interval - time.monotonic())

    def _handle(self, items: collections.deque[Any], plain: bool) -> None:
        """Process queued items in order; ``plain`` means they are all async records."""
        if plain:
            self._write_batch(list(items), None)
            return
        records: list[AuditRecord] = []
        futures: list[Future[None] | None] = []
        for item in items:
            if type(item) is not tuple:
                records.append(item)
                futures.append(None)
                continue
            op, arg, future = item
            if op is _Op.RECORD:
                records.append(arg)
                futures.append(future)
                continue
            if records:
                self._write_batch(records, futures)
                records, futures = [], []
            self._control(op, arg, future)
        if records:
            self._write_batch(records, futures)

    def _control(self, op: _Op, arg: Any, future: Future[None] | None) -> None:
        if self._error is not None:
            self._fail_control(future)
            return
        if op is _Op.CHECKPOINT and self._tree.size > self._cp_size:
            self._guarded(self._write_checkpoint)
        elif op is _Op.ROTATE:
            self._guarded(self._rotate)
        elif op is _Op.SIGNER:
            if self._tree.size > self._cp_size:
                # signed by both keys: a log reopened with the new key alone can verify it
                self._guarded(lambda: self._write_checkpoint([self._signer, arg]))
            self._signer = arg
            self._trusted.add(arg.public_key)
        elif op is _Op.ERASE:
            try:
                self._erase(arg)
            except Exception as exc:
                if future is not None:
                    future.set_exception(exc)
                return
        elif op is _Op.FLUSH and not self._sync:
            self._guarded(lambda: os.fdatasync(self._fd))
        if future is not None:
            if self._error is None:
                future.set_result(None)
            else:
                self._fail_control(future)

    def _write_batch(
        self, records: list[AuditRecord], futures: list[Future[None] | None] | None
    ) -> None:
        start, end = 0, len(records)
        while start < end:
            if self._error is not None:
                self._reject(records[start:], futures[start:] if futures else None, self._error)
                return
            if self._seg_bytes and (
                self._seg_bytes >= self._segment_max_bytes
                or time.time() - self._seg_started >= self._segment_max_age
            ):
                self._guarded(self._rotate)
                continue
            # cut the batch where a checkpoint is due, so checkpoints land every N records
            room = max(self._checkpoint_every - (self._tree.size - self._cp_size), 1)
            try:
                done = self._append(records[start : start + room])
            except Exception as exc:
                self._set_error(exc)
                self._reject(records[start:], futures[start:] if futures else None, exc)
                return
            if futures is not None:
                for future in futures[start : start + done]:
                    if future is not None:
                        future.set_result(None)
            start += done
            if self._tree.size - self._cp_size >= self._checkpoint_every:
                self._guarded(self._write_checkpoint)

    def _append(self, records: list[AuditRecord]) -> int:
        """Encode, write and (sync) fsync a prefix of ``records``; returns how many.

        The prefix ends early where the segment fills up. State changes only if the write
        succeeds.
        """
        if self._tree.size == self._cp_size and self._marked != self._cp_size:
            # a crash may leave what follows unsigned: say first that a writer appends it
            mark_tail(
                self.directory,
                Checkpoint(self.origin, self._tree.size, self._tree.root()),
                self._signer,
            )
            self._marked = self._cp_size
            self._mark_on_disk = True
        room = self._segment_max_bytes - self._seg_bytes
        lines, hashes, _ = self._encoder.encode(records, self._seq, self._prev.encode(), room)
        # the keys the lines are sealed under are committed before the lines are written:
        # durably, or (reserved keys) so that the lines' key numbers can redo the commit
        if self._batched_keys is not None:
            self._batched_keys.commit()
        lines.append(b"")
        data = b"\n".join(lines)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self._sync:
                os.fdatasync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, self._seg_bytes)
            except OSError:
                self._written.complete = False  # the segment may keep part of the lines
            raise
        count = len(hashes)
        self._written.add(map(_record_id, records[:count]), hashes[-1])
        self._seg_bytes += len(data)
        self._prev = hashes[-1].hex()
        self._seq += count
        self._extend_tree(hashes)
        self._flush_levels()
        return count

    def _extend_tree(self, hashes: list[bytes]) -> None:
        levels = self._levels
        levels[0] += b"".join(hashes)
        for level, nodes in enumerate(self._tree.extend(hashes), 1):
            levels[level] += b"".join(nodes)

    def _probe(self) -> None:
        """Raise ``OSError`` unless 64 KiB can be written and synced in the directory."""
        path = self.directory / _PROBE_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if os.write(fd, _PROBE_BYTES) != len(_PROBE_BYTES):
                raise OSError(f"short write to {path}")
            os.fdatasync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()

    def _erase(self, ref: str) -> None:
        if self._subject_keys is not None:
            self._subject_keys.erase(ref)
        if self._sealer is not None:
            self._sealer.forget()

    def _on_node(self, level: int, node: bytes) -> None:
        self._levels[level] += node

    def _flush_levels(self) -> None:
        self._tree_files.append(self._levels)
        for buf in self._levels.values():
            buf.clear()

    def _write_checkpoint(self, signers: list[Signer] | None = None) -> None:
        """Sign the current tree; the records it covers are fsynced first."""
        os.fdatasync(self._fd)
        checkpoint = Checkpoint(self.origin, self._tree.size, self._tree.root())
        signed = checkpoint.sign(signers or [self._signer])
        fd = os.open(self._seg.checkpoints, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = (signed.note() + "\n").encode()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._sync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        self._cp_size = self._tree.size
        self._cp_time = time.monotonic()
        self._last_checkpoint = signed
        self._clear_mark()

    def _clear_mark(self) -> None:
        """Remove the unsigned-tail mark once nothing is uncovered: at rest, no mark remains
        that a record appended later could hide behind."""
        if self._mark_on_disk:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / TAIL_MARK_FILE)
            self._mark_on_disk = False
            self._marked = -1

    def _maybe_checkpoint(self) -> None:
        if self._tree.size > self._cp_size and (
            self._tree.size - self._cp_size >= self._checkpoint_every
            or time.monotonic() - self._cp_time >= self._checkpoint_interval
        ):
            self._guarded(self._write_checkpoint)

    def _rotate(self) -> None:
        if self._seg_bytes == 0:
            return
        if self._tree.size > self._cp_size:
            self._write_checkpoint()
        if self._reserved_keys is not None:
            # a reopened log replays the active segment only: the sealed one's records
            # must not need their key numbers any more
            self._reserved_keys.sync()
        os.fsync(self._fd)
        self._tree_files.sync()
        old, sealed, written = self._fd, self._seg, self._written
        self._start_segment(self._tree.size)
        os.close(old)
        self._indexer.add_written(sealed, written)
        if self._retention_days is not None:
            try:
                prune(self.directory, signer=self._signer, keep_days=self._retention_days)
            except (OSError, AuditLogError):
                _log.exception("pruning old audit segments failed")

    def _guarded(self, action: Any) -> None:
        try:
            action()
        except Exception as exc:
            self._set_error(exc)

    def _set_error(self, exc: BaseException) -> None:
        _log.error("audit log %s cannot be written: %s", self.directory, exc)
        with self._lock:
            self._error = exc

    def _reject(
        self,
        records: list[AuditRecord],
        futures: list[Future[None] | None] | None,
        exc: BaseException,
    ) -> None:
        for i, record in enumerate(records):
            future = futures[i] if futures is not None else None
            if future is None:
                self._unwritten.append(record)
            else:
                future.set_exception(_unavailable(self.directory, exc))

    def _fail_control(self, future: Future[None] | None) -> None:
        if future is not None and not future.done():
            future.set_exception(_unavailable(self.directory, self._error))

    def _fail(self, items: collections.deque[Any], exc: BaseException | None) -> None:
        for item in items:
            if type(item) is not tuple:
                self._unwritten.append(item)
                continue
            op, arg, future = item
            if op is _Op.RECORD and future is None:
                self._unwritten.append(arg)
            elif future is not None and not future.done():
                future.set_exception(_unavailable(self.directory, exc))

    def _retry(self, items: collections.deque[Any]) -> None:
        """While unhealthy: reject sync work, keep async records, try to write them again."""
        self._fail(items, self._error)
        try:
            if not self._unwritten:
                self._probe()
            while self._unwritten:
                done = self._append(self._unwritten)
                del self._unwritten[:done]
        except Exception as exc:
            with self._lock:
                self._error = exc
            return
        self._unwritten = []
        with self._lock:
            self._error = None
        _log.warning("audit log %s is writable again", self.directory)


_PROBE_FILE = ".probe"
_PROBE_BYTES = b"\0" * 65_536


def _unavailable(directory: Path, exc: BaseException | None) -> AuditUnavailable:
    error = AuditUnavailable(f"the audit log {directory} cannot be written: {exc}")
    error.__cause__ = exc
    return error


def _origin(directory: Path, wanted: str | None) -> str:
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
    tmp = directory / (ORIGIN_FILE + ".tmp")
    tmp.write_text(origin + "\n")
    os.replace(tmp, directory / ORIGIN_FILE)
    fsync_directory(directory)
    return origin


def _demo_signer(directory: Path) -> Signer:
    """The demo key in ``directory/keys``, made on first use."""
    key_dir = directory / DEMO_KEY_DIR
    keys = sorted(key_dir.glob("*.key")) if key_dir.is_dir() else []
    if keys:
        return Signer.from_file(keys[-1])
    _, _, signer = write_keypair(key_dir, DEMO_KEY_NAME)
    return signer
