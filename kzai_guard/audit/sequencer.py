"""The per-process writer of an audit log, over any :class:`~kzai_guard.audit.storage.LogStorage`.

Records are queued; a writer thread, started by the first write of the process, takes what
was queued, holds the storage's sequencing lock for the batch (``storage.sequence()``), reads
the head, seals and encodes the records after it, appends them with the tree nodes they
complete, and signs a checkpoint every ``checkpoint_every`` records or
``checkpoint_interval_ms`` milliseconds, whichever process's records they are: the lock holder
signs. Every process of a service runs one of these over the same log.

Durability:

- ``"sync"`` (the default): :meth:`Sequencer.write` returns a
  :class:`~concurrent.futures.Future` that resolves once the record is on stable storage.
  Records queued while one batch is written share the next fsync (group commit).
- ``"async"``: ``write`` returns ``None`` once the record is queued; the queue is bounded
  (a full queue blocks the caller up to ``put_timeout`` seconds, then refuses). What a crash
  loses: every record still queued or lingering (up to ``queue_limit`` records, and the
  5 ms the writer waits for a batch to build up), and the written records the operating
  system had not yet put on disk. Everything queued is written before :meth:`close` returns.

When the log cannot be written :attr:`healthy` turns false and ``write`` raises
:class:`~kzai_guard.errors.AuditUnavailable`; sync writers get the error through their future,
async records are kept and retried, and :meth:`close` raises
:class:`~kzai_guard.errors.AuditLogError` if any could still not be written.

Witnesses: given :class:`~kzai_guard.audit.witnesses.Witnesses`, each checkpoint this process
signs is handed to them (:meth:`~kzai_guard.audit.witnesses.Witnesses.submit`, which returns at
once); their threads send it and keep the cosignatures.

Forks: nothing made before a ``fork()`` is used after it. In the child, the queue, threads,
locks, the storage's descriptors and the key store are made anew on first use; records the
parent queued stay the parent's.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal

from kzai_guard.audit.checkpoint import Checkpoint, SignedCheckpoint
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.lines import LineEncoder, chain
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.shredding import BatchedSubjectKeys, Sealer, SubjectKeys, subject_ref
from kzai_guard.audit.storage import Appending, LogStorage
from kzai_guard.audit.witnesses import Witnesses
from kzai_guard.audit.write_queue import Op, WriteQueue, built
from kzai_guard.errors import AuditLogError, ConfigurationError

__all__ = ["Durability", "Sequencer"]

_log = logging.getLogger("kzai_guard.audit")

Durability = Literal["sync", "async"]

_RETRY_SECONDS = 1.0
_LINGER_SECONDS = 0.005
_LINGER_BELOW = 4096


_live: weakref.WeakSet[Sequencer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sequencer in list(_live):
        sequencer._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Sequencer(WriteQueue):
    """Queues records and appends them, in batches, to a shared log storage.

    ``subject_keys`` is the store sealing personal fields (``None``: written in clear);
    ``reopen_keys``, if given, makes this process's own store after a fork (the store's
    connections are not used across one). ``name`` names the log in messages.
    ``witnesses``, already started on the log, get each checkpoint this process signs.
    """

    def __init__(
        self,
        storage: LogStorage,
        *,
        name: str,
        signer: Signer,
        durability: Durability,
        checkpoint_every: int,
        checkpoint_interval_ms: int,
        subject_keys: SubjectKeys | None,
        reopen_keys: Callable[[], SubjectKeys] | None = None,
        queue_limit: int,
        put_timeout: float,
        witnesses: Witnesses | None = None,
    ) -> None:
        if durability not in ("sync", "async"):
            raise ConfigurationError(f"durability must be 'sync' or 'async', not {durability!r}")
        if checkpoint_every < 1 or checkpoint_interval_ms < 1 or queue_limit < 1:
            raise ConfigurationError(
                "checkpoint_every, checkpoint_interval_ms and queue_limit must be positive"
            )
        self.durability = durability
        self.origin = storage.origin
        self._storage = storage
        self._format = storage.format
        self._signer = signer
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval_ms / 1000.0
        self._subject_keys = subject_keys
        self._reopen_keys = reopen_keys
        self._witnesses = witnesses
        self._size = 0
        super().__init__(
            name, sync=durability == "sync", queue_limit=queue_limit, put_timeout=put_timeout
        )
        self._fresh_process()
        _live.add(self)

    def _fresh_process(self) -> None:
        """The writer's state in one process: its sealer and what it knows of the head."""
        keys = self._subject_keys
        self._batched = keys if isinstance(keys, BatchedSubjectKeys) else None
        self._sealer = Sealer(keys) if keys is not None else None
        self._encoder = LineEncoder(self._sealer, leaf_format=self._format)
        self._erasures = -1
        self._uncovered = False
        self._started = time.time()
        self._checkpoint_due = 0.0

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's writer, queue and descriptors."""
        if self._reopen_keys is not None and not self._closed:
            # the parent's connections are left alone (not closed) in the child
            self._subject_keys = None
            self._batched = None
        self._fresh_queue()
        self._fresh_process()
        with contextlib.suppress(Exception):
            self._storage.after_fork()

    # ------------------------------------------------------------------ the sink API

    @property
    def size(self) -> int:
        """How many records the log held when this process last appended or looked."""
        return self._size

    @property
    def last_checkpoint(self) -> SignedCheckpoint | None:
        """The newest checkpoint this process signed or saw."""
        return self._last_checkpoint

    @property
    def signer(self) -> Signer:
        """The key that signs this process's next checkpoint."""
        return self._signer

    def erase_subject(self, pseudonym: str, timeout: float | None = None) -> None:
        """Crypto-shred one subject: erase the key sealing its personal fields.

        Records queued before the call are written first, so they are covered too; every
        other process of the log drops its cached keys before it seals its next batch. The
        records stay in the log and keep verifying; their personal fields read as
        :data:`~kzai_guard.audit.shredding.ERASED`.
        """
        if self._subject_keys is None and self._reopen_keys is None:
            raise ConfigurationError("this log writes personal fields in clear; nothing to erase")
        self._control(Op.ERASE, subject_ref(pseudonym), timeout)

    def close(self) -> None:
        """Write everything queued, sign a final checkpoint and release the storage.

        With witnesses, waits up to their ``close_wait_s`` (2 s by default) for them to
        cosign the final checkpoint (:meth:`~kzai_guard.audit.witnesses.Witnesses.settle`).

        Raises :class:`~kzai_guard.errors.AuditLogError` if accepted records could not be
        written. Later writes raise :class:`~kzai_guard.errors.AuditUnavailable`.
        """
        if not self._stop_writer():
            return
        lost = len(self._unwritten)
        error = self._error
        with contextlib.suppress(Exception):
            self._storage.close()
        if self._witnesses is not None:
            # a moment for the witnesses to cosign the final checkpoint; what is not cosigned
            # by then is sent at the next open
            with contextlib.suppress(Exception):
                self._witnesses.settle()
            self._witnesses.close()
        keys = self._subject_keys
        if self._reopen_keys is not None and keys is not None:
            with contextlib.suppress(Exception):
                keys.close()  # type: ignore[attr-defined]
        if lost:
            raise AuditLogError(
                f"{lost} accepted audit records could not be written to {self._name}: {error}"
            )

    def __enter__(self) -> Sequencer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                drafts, self._drafts = self._drafts, 0
                closing = self._closing
                self._not_full.notify_all()
            if drafts:
                # the guard's drafts are built here, off its request threads
                items = collections.deque(map(built, items))
            if self._error is not None:
                self._retry(items)
            else:
                self._batch(list(items), plain)
            if closing:
                with self._lock:
                    more = bool(self._items)
                if more:
                    continue
                if self._error is not None:
                    self._retry(collections.deque())
                if self._error is None:
                    self._hold(self._sign)
                return

    def _wait_time(self) -> float | None:
        if self._error is not None:
            return _RETRY_SECONDS
        if not self._uncovered:
            return None
        return max(0.0, self._checkpoint_due - time.time())

    def _hold(self, action: Callable[[Appending], None]) -> None:
        """Run ``action`` under the sequencing lock; an error makes the log unhealthy."""
        try:
            with self._storage.sequence() as appending:
                self._see(appending)
                action(appending)
        except Exception as exc:
            self._set_error(exc)

    def _batch(self, items: list[Any], plain: bool) -> None:
        """Write queued items in order under one hold; ``plain``: all are async records.

        The records are sealed before the hold (:meth:`_seal_ahead`), so that the writers of
        a log seal in parallel and hold the lock only to chain, write and sign."""
        self._keys()
        self._done = 0
        ahead = self._seal_ahead(items, plain)
        try:
            with self._storage.sequence() as appending:
                self._see(appending)
                bodies = ahead[1] if ahead is not None and ahead[0] == self._erasures else None
                # the new keys are committed under the hold, where the writers of the log take
                # turns (no waiting on each other's key-store commits); before the lines
                if bodies is not None and self._batched is not None and self._batched.commit():
                    bodies = None  # another writer's key won: sealed again, below
                if plain:
                    self._records(appending, items, None, bodies)
                    self._done = len(items)
                else:
                    self._mixed(appending, items, bodies)
                if (
                    self._error is None
                    and self._uncovered
                    and (time.time() >= self._checkpoint_due)
                ):
                    self._sign(appending)
        except Exception as exc:
            self._set_error(exc)
            self._fail(collections.deque(items[self._done :]), exc)

    def _seal_ahead(self, items: list[Any], plain: bool) -> tuple[int, list[bytes]] | None:
        """The line bodies of a batch of records only, sealed without the hold, with the
        erasure count they were sealed at: they are used only if the hold finds it unchanged
        (no key erased anywhere in between). The keys made for them are committed under the
        hold: writers that committed them at once would wait on each other's key-store lock.
        ``None`` for a batch with control items, or if sealing failed (the hold seals again,
        and reports what fails)."""
        records: list[AuditRecord] = items
        if not plain:
            records = []
            for item in items:
                if type(item) is not tuple:
                    records.append(item)
                elif item[0] is Op.RECORD:
                    records.append(item[1])
                else:
                    return None  # an erasure must come between the records' sealing
        erasures = self._erasures
        try:
            return erasures, self._encoder.bodies(records)
        except Exception:
            return None

    def _sealed(self, records: list[AuditRecord]) -> list[bytes]:
        """The records' line bodies, the keys they are sealed under committed first (again,
        under the winning keys, if another writer committed keys of its own first)."""
        bodies = self._encoder.bodies(records)
        while self._batched is not None and self._batched.commit():
            bodies = self._encoder.bodies(records)
        return bodies

    def _mixed(self, appending: Appending, items: list[Any], bodies: list[bytes] | None) -> None:
        """Records and control items in order; ``bodies``: the sealed records, if no control
        item is among them."""
        if bodies is not None:
            kept: list[AuditRecord] = []
            kept_futures: list[Future[None] | None] = []
            kept_bodies: list[bytes] = []
            for item, body in zip(items, bodies, strict=True):
                if type(item) is not tuple:
                    kept.append(item)
                    kept_futures.append(None)
                elif item[2] is not None and not item[2].set_running_or_notify_cancel():
                    continue  # given up by its writer (see below): not written
                else:
                    kept.append(item[1])
                    kept_futures.append(item[2])
                kept_bodies.append(body)
            if kept:
                self._records(appending, kept, kept_futures, kept_bodies)
            self._done = len(items)
            return
        records: list[AuditRecord] = []
        futures: list[Future[None] | None] = []
        given_up = 0
        for item in items:
            if type(item) is not tuple:
                records.append(item)
                futures.append(None)
                continue
            op, arg, future = item
            if op is Op.RECORD:
                if future is not None and not future.set_running_or_notify_cancel():
                    # its writer stopped waiting before the head was locked (a sync decision
                    # past its durable_wait, answered 503): the record is not written
                    given_up += 1
                    continue
                records.append(arg)
                futures.append(future)
                continue
            if records:
                self._records(appending, records, futures)
            self._done += len(records) + given_up
            records, futures, given_up = [], [], 0
            self._apply(appending, op, arg, future)
            self._done += 1
        if records:
            self._records(appending, records, futures)
        self._done += len(records) + given_up

    def _apply(self, appending: Appending, op: Op, arg: Any, future: Future[None] | None) -> None:
        """Carry out one control item under the hold."""
        if self._error is not None:
            self._fail_control(future)
            return
        try:
            if op is Op.CHECKPOINT:
                self._sign(appending)
            elif op is Op.ROTATE:
                self._sign(appending)
                appending.rotate()
            elif op is Op.SIGNER:
                self._sign(appending)
                self._signer = arg
            elif op is Op.ERASE:
                keys = self._keys()
                if keys is not None:
                    keys.erase(arg)
                appending.note_erasure()
                if self._sealer is not None:
                    self._sealer.forget()
                self._erasures = appending.head.erasures
            elif op is Op.FLUSH and not self._sync:
                appending.append([], [], [], durable=True)
        except Exception as exc:
            if op is not Op.ERASE:
                self._set_error(exc)
            if future is not None:
                future.set_exception(exc if op is Op.ERASE else self._unavailable(exc))
            return
        if future is not None:
            future.set_result(None)

    def _records(
        self,
        appending: Appending,
        records: list[AuditRecord],
        futures: list[Future[None] | None] | None,
        bodies: list[bytes] | None = None,
    ) -> None:
        start, end = 0, len(records)
        while start < end:
            if self._error is not None:
                self._reject(records[start:], futures[start:] if futures else None, self._error)
                return
            try:
                head = appending.head
                # cut the batch where a checkpoint is due, so checkpoints land every N records
                room = max(self._checkpoint_every - (head.size - head.checkpoint_size), 1)
                done = self._append(
                    appending,
                    records[start : start + room],
                    None if bodies is None else bodies[start : start + room],
                )
            except Exception as exc:
                self._set_error(exc)
                self._reject(records[start:], futures[start:] if futures else None, exc)
                return
            if futures is not None:
                for future in futures[start : start + done]:
                    if future is not None:
                        future.set_result(None)
            start += done
            head = appending.head
            if head.size - head.checkpoint_size >= self._checkpoint_every:
                try:
                    self._sign(appending)
                except Exception as exc:
                    self._set_error(exc)

    def _append(
        self, appending: Appending, records: list[AuditRecord], bodies: list[bytes] | None
    ) -> int:
        """Append a prefix of ``records`` after the head (sealed here unless ``bodies`` are
        their sealed line bodies); returns how many.

        Where the storage has no room left, it rotates first, the log covered by a checkpoint.
        """
        if bodies is None:
            # the keys the lines are sealed under are committed before the lines are written
            bodies = self._sealed(records)
        if appending.room <= 0:
            self._sign(appending)
            appending.rotate()
        head = appending.head
        lines, hashes, _ = chain(
            bodies, head.size, head.prev.hex().encode(), appending.room, self._format
        )
        nodes = CompactRange(head.size, head.edge).extend(hashes)
        appending.append(lines, hashes, nodes, self._sync)
        self._size = appending.head.size
        self._uncovered = True
        return len(hashes)

    def _retry(self, items: collections.deque[Any]) -> None:
        """While unhealthy: reject sync work, keep async records, try to write them again."""
        self._fail(items, self._error)
        try:
            with self._storage.sequence() as appending:
                self._see(appending)
                if not self._unwritten:
                    probe = getattr(self._storage, "probe", None)
                    if probe is not None:
                        probe()
                    else:
                        appending.append([], [], [], durable=True)
                while self._unwritten:
                    done = self._append(appending, self._unwritten, None)
                    del self._unwritten[:done]
        except Exception as exc:
            with self._lock:
                self._error = exc
            return
        with self._lock:
            self._error = None
        _log.warning("audit log %s is writable again", self._name)

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
                future.set_exception(self._unavailable(exc))

    def _fail_control(self, future: Future[None] | None) -> None:
        if future is not None and not future.done():
            future.set_exception(self._unavailable(self._error))

    def _keys(self) -> SubjectKeys | None:
        """The key store, made for this process if a fork left it without one."""
        if self._subject_keys is None and self._reopen_keys is not None and not self._closed:
            keys = self._subject_keys = self._reopen_keys()
            self._batched = keys if isinstance(keys, BatchedSubjectKeys) else None
            self._sealer = Sealer(keys)
            self._encoder = LineEncoder(self._sealer, leaf_format=self._format)
        return self._subject_keys

    def _see(self, appending: Appending) -> None:
        """Take in the head: drop cached keys after an erasure anywhere in the log."""
        head = appending.head
        if head.erasures != self._erasures:
            if self._erasures >= 0 and self._sealer is not None:
                self._sealer.forget()
                forget = getattr(self._subject_keys, "forget", None)
                if forget is not None:
                    forget()
            self._erasures = head.erasures
        self._note(appending)

    def _note(self, appending: Appending) -> None:
        head = appending.head
        self._size = head.size
        if head.checkpoint is not None:
            self._last_checkpoint = head.checkpoint
        self._uncovered = head.size > head.checkpoint_size
        # a log without a checkpoint's time (new, or repaired) counts from this process's start
        since = max(head.checkpoint_time, self._started)
        self._checkpoint_due = since + self._checkpoint_interval

    def _sign(self, appending: Appending) -> None:
        """Sign a checkpoint over the whole log, if any record is not covered yet."""
        head = appending.head
        if head.size > head.checkpoint_size:
            root = CompactRange(head.size, head.edge).root()
            signed = Checkpoint(self.origin, head.size, root).sign([self._signer])
            appending.add_checkpoint(signed, durable=self._sync)
            if self._witnesses is not None:
                self._witnesses.submit(signed)
        self._note(appending)
