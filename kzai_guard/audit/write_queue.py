"""The hand-off between a process's callers and its audit writer thread.

:class:`WriteQueue` holds what the callers of one process queued (records, and control items
such as a flush or a checkpoint, each with a future), applies backpressure to ``async``
callers, starts the writer thread on the first write of the process, and keeps the writer's
error state. The writer itself, which takes batches off the queue and appends them to the
log, is :class:`~kzai_guard.audit.sequencer.Sequencer`.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.sink import RecordDraft
from kzai_guard.errors import AuditUnavailable

__all__ = ["Op", "WriteQueue", "built"]

_log = logging.getLogger("kzai_guard.audit")


class Op(enum.Enum):
    """What a control item asks of the writer."""

    RECORD = 0
    FLUSH = 1
    CHECKPOINT = 2
    ROTATE = 3
    SIGNER = 4
    ERASE = 5


Item = tuple[Op, Any, "Future[None] | None"]


def built(item: Any) -> Any:
    """A queued item, a :class:`~kzai_guard.audit.sink.RecordDraft` built into its record."""
    kind = type(item)
    return item if kind is AuditRecord or kind is tuple else item.build()


class WriteQueue:
    """One process's queue of audit work, and the sink API that fills it.

    Subclasses implement :meth:`_loop`, the writer thread's work.
    """

    def __init__(self, name: str, *, sync: bool, queue_limit: int, put_timeout: float) -> None:
        self._name = name
        self._sync = sync
        self._queue_limit = queue_limit
        self._put_timeout = put_timeout
        self._closed = False
        self._last_checkpoint: SignedCheckpoint | None = None
        self._fresh_queue()

    def _fresh_queue(self) -> None:
        """The queue, locks and writer state of one process (a forked child starts here)."""
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._items: collections.deque[Any] = collections.deque()
        self._tuples = 0
        self._drafts = 0
        self._closing = self._closed
        self._error: BaseException | None = None
        self._unwritten: list[AuditRecord] = []
        self._writer: threading.Thread | None = None
        self._writing = not self._closed
        """False once the writer stopped, however it stopped: what :attr:`healthy` reads."""

    @property
    def healthy(self) -> bool:
        """False while records cannot be written, and after :meth:`close`."""
        return self._error is None and not self._closing and self._writing

    def write(self, record: AuditRecord) -> Future[None] | None:
        """Queue one record; in ``sync`` mode the future resolves once it is durable.

        Raises :class:`~kzai_guard.errors.AuditUnavailable` if the log is closed, unhealthy, or
        (``async``) its queue stayed full for ``put_timeout`` seconds.
        """
        if self._sync:
            future: Future[None] = Future()
            self._put((Op.RECORD, record, future))
            return future
        with self._lock:
            items = self._items  # read under the lock: the writer swaps in a fresh deque
            if (
                len(items) < self._queue_limit
                and not self._closing
                and self._error is None
                and self._writer is not None
            ):
                items.append(record)
                if len(items) == 1:
                    self._not_empty.notify()
                return None
        self._put(record)
        return None

    def write_draft(self, draft: RecordDraft) -> Future[None] | None:
        """Queue a record the writer thread builds (:class:`~kzai_guard.audit.sink.RecordDraft`);
        otherwise as :meth:`write`. In ``sync`` mode the record is built here, at once."""
        if self._sync:
            return self.write(draft.build())
        # write's fast path, written out again rather than shared: one call less per decision
        with self._lock:
            items = self._items
            if (
                len(items) < self._queue_limit
                and not self._closing
                and self._error is None
                and self._writer is not None
            ):
                items.append(draft)
                self._drafts += 1
                if len(items) == 1:
                    self._not_empty.notify()
                return None
        self._put(draft)
        return None

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is written (and fsynced in ``sync`` mode)."""
        self._control(Op.FLUSH, None, timeout)

    def checkpoint(self, timeout: float | None = None) -> SignedCheckpoint | None:
        """Write what is queued and sign a checkpoint now; returns it (``None`` if empty)."""
        self._control(Op.CHECKPOINT, None, timeout)
        return self._last_checkpoint

    def rotate_segment(self, timeout: float | None = None) -> None:
        """Cover the log with a checkpoint and start the storage's next unit now (the file
        storage: seal the active segment and start a new one)."""
        self._control(Op.ROTATE, None, timeout)

    def rotate_key(self, signer: Signer, timeout: float | None = None) -> None:
        """Sign this process's checkpoints from the next one on with ``signer``.

        The records so far are first covered by a checkpoint of the old key. Keep the old
        public key in the verifiers' keyring: old checkpoints stay signed by it.
        """
        self._control(Op.SIGNER, signer, timeout)

    def _control(self, op: Op, arg: Any, timeout: float | None) -> None:
        future: Future[None] = Future()
        self._put((op, arg, future), control=True)
        future.result(timeout)

    def _put(self, item: Item | AuditRecord | RecordDraft, control: bool = False) -> None:
        with self._lock:
            if self._closing:
                raise AuditUnavailable(f"the audit log {self._name} is closed")
            if self._error is not None and not control:
                raise AuditUnavailable(
                    f"the audit log {self._name} cannot be written: {self._error}"
                )
            if not self._sync and not control and len(self._items) >= self._queue_limit:
                deadline = time.monotonic() + self._put_timeout
                while len(self._items) >= self._queue_limit:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closing:
                        raise AuditUnavailable(
                            f"the audit log {self._name} is {self._queue_limit} records "
                            f"behind for {self._put_timeout}s; refusing more"
                        )
                    self._not_full.wait(left)
            self._items.append(item)
            if type(item) is tuple:
                self._tuples += 1
            elif type(item) is not AuditRecord:
                self._drafts += 1
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._run, name="kzai-audit-writer", daemon=True
                )
                self._writer.start()
            elif len(self._items) == 1:
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

    def _set_error(self, exc: BaseException) -> None:
        _log.error("audit log %s cannot be written: %s", self._name, exc)
        with self._lock:
            self._error = exc

    def _fail(self, items: collections.deque[Any], exc: BaseException | None) -> None:
        for item in items:
            if type(item) is not tuple:
                self._unwritten.append(built(item))
                continue
            op, arg, future = item
            if op is Op.RECORD and future is None:
                self._unwritten.append(arg)
            elif future is not None and not future.done():
                future.set_exception(self._unavailable(exc))

    def _unavailable(self, exc: BaseException | None) -> AuditUnavailable:
        error = AuditUnavailable(f"the audit log {self._name} cannot be written: {exc}")
        error.__cause__ = exc
        return error

    def _stop_writer(self) -> bool:
        """Refuse more work and wait until the writer finished what was queued; ``False`` if
        this was done before."""
        with self._lock:
            if self._closed:
                return False
            self._closing = True
            self._not_empty.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()
        self._closed = True
        self._writing = False
        return True

    def _loop(self) -> None:
        """The writer thread's work, until the queue is closed and drained."""
        raise NotImplementedError
