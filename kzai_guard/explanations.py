"""Explanations kept for retrieval by decision id, written by a background thread.

The request path hands over the explanation as the decision function gave it
(:class:`PendingExplanation`); its JSON (the bytes its audit digest covers) and digest are made
off the request thread, and a writer thread stores them in batches (group commit: one store
transaction for every explanation that arrived while the previous one was written).

- With ``durable=False`` (the guard's ``durability="async"``), :meth:`Explanations.put` returns
  at once; woken by the first of a batch with less than a batch queued, the writer lingers
  :data:`LINGER_SECONDS` for more before it writes, so that a quiet service pays one store
  transaction per few milliseconds rather than one per decision. Until then only this process
  can serve the explanation (:meth:`Explanations.get` serves the queued copy), so a ``Link`` to
  it may answer 404 on another host for those milliseconds, and a crash loses what was queued.
- With ``durable=True`` (``durability="sync"``), :meth:`Explanations.put` returns a future that
  completes once the explanation is in the store; the decision's response waits for it
  (:func:`released_when_stored`), so every host can serve the ``Link`` it carries. The writer
  does not linger: what arrives while it writes forms the next batch.

The guard's defaults (contact, how to object, model) are applied when an explanation is read,
so the person always sees the current contact details.

At most :data:`PENDING_LIMIT` explanations wait for the writer: a decision that finds that many
waits until the writer has stored a batch, so a service that decides faster than its store
writes holds a bounded backlog, not a growing one. While the store fails, nothing waits: the
explanations stay in memory (served from there), the failure is logged, the futures of durable
ones fail (their responses go without a ``Link``), and the writer tries them again every
:data:`RETRY_SECONDS` until the store takes them.

In a child process after a fork, the archive gets a writer thread, queue and locks of its own;
what the parent had queued is the parent's to store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from kzai_guard.core.explanation import Explanation, explanation_json
from kzai_guard.digest import sha256_hex
from kzai_guard.errors import StoreError
from kzai_guard.forking import remake_after_fork
from kzai_guard.stores.base import Store, StoredExplanation

__all__ = [
    "LINGER_SECONDS",
    "PENDING_LIMIT",
    "RETRY_SECONDS",
    "Archive",
    "Explanations",
    "PendingExplanation",
    "released_when_stored",
]

_BATCH = 256
LINGER_SECONDS = 0.005
"""How long the writer waits, after the first explanation of a batch, for more to arrive."""
PENDING_LIMIT = 16_384
"""How many explanations may wait for the writer before a decision waits for room."""
RETRY_SECONDS = 1.0
"""How often the writer tries again to store explanations the store refused."""
_ROOM_WAIT_SECONDS = 5.0
_log = logging.getLogger("kzai_guard")
_STOP = object()


class _Kept(Protocol):
    """What an archive keeps: one item per decision, about one subject."""

    @property
    def decision_id(self) -> str: ...

    @property
    def subject_ref(self) -> str: ...


_Item = TypeVar("_Item", bound=_Kept)


class Archive(Generic[_Item]):
    """Items kept per decision, written by a background thread (see the module's description);
    :class:`Explanations` keeps explanations, :class:`~kzai_guard.data_bases.DataBases` the data
    decisions rest on."""

    def __init__(
        self,
        write: Callable[[Sequence[_Item]], None],
        read: Callable[[str], _Item | None],
        noun: str,
        pending_limit: int = PENDING_LIMIT,
        *,
        durable: bool = False,
    ) -> None:
        if pending_limit < 1:
            raise ValueError("pending_limit must be at least 1")
        self._write = write
        self._read = read
        self._noun = noun
        self._limit = pending_limit
        self.durable = durable
        """Whether :meth:`put` returns a future that completes once the store has it."""
        self._closed = False
        self._pending: dict[str, _Item] = {}
        self._start()
        remake_after_fork(self)

    def _start(self) -> None:
        self._room = threading.Condition()
        self._failing = False
        self._unstored: list[_Item] = []
        self._queue: queue.SimpleQueue[
            tuple[_Item, Future[None] | None] | threading.Event | object
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name=f"kzai-guard-{self._noun.replace(' ', '-')}", daemon=True
        )
        self._thread.start()

    def put(self, item: _Item) -> Future[None] | None:
        """Queue an item for storage (no I/O on the caller's thread).

        Returns, when :attr:`durable`, a future that completes once the item is stored
        (with :class:`~kzai_guard.errors.StoreError` if the store refused it); otherwise
        ``None``. Waits while :data:`PENDING_LIMIT` items are already waiting for the
        writer (never while the store is failing, and at most a few seconds)."""
        if len(self._pending) >= self._limit and not self._failing:
            self._wait_for_room()
        self._pending[item.decision_id] = item
        stored: Future[None] | None = Future() if self.durable else None
        self._queue.put((item, stored))
        return stored

    def _wait_for_room(self) -> None:
        with self._room:
            self._room.wait_for(
                lambda: len(self._pending) < self._limit or self._failing,
                timeout=_ROOM_WAIT_SECONDS,
            )

    def get(self, decision_id: str) -> _Item | None:
        """The item of ``decision_id``, stored or still queued."""
        pending = self._pending.get(decision_id)
        return pending if pending is not None else self._read(decision_id)

    def forget_subject(self, subject_ref: str) -> int:
        """Drop the items of ``subject_ref`` still held in memory (an erasure; call
        :meth:`flush` first, so that the writer holds none of them). Returns how many."""
        mine = [d for d, item in list(self._pending.items()) if item.subject_ref == subject_ref]
        for decision_id in mine:
            self._pending.pop(decision_id, None)
        return len(mine)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the writer has tried to store everything queued so far."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError(f"{self._noun} were not stored in time")

    def close(self) -> None:
        """Store what is queued and stop the writer."""
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def after_fork_in_child(self) -> None:
        """In a forked child: a writer, queue and locks of its own; the parent stores what it
        had queued."""
        self._pending = {}
        if not self._closed:
            self._start()

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=RETRY_SECONDS if self._unstored else None)
            except queue.Empty:
                self._store_batch([])
                continue
            if isinstance(item, tuple) and not self.durable and self._queue.qsize() < _BATCH:
                time.sleep(LINGER_SECONDS)
            batch: list[tuple[_Item, Future[None] | None]] = []
            signals: list[threading.Event] = []
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    signals.append(item)
                elif isinstance(item, tuple):
                    batch.append(item)
                if stop or len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch or (stop and self._unstored):
                self._store_batch(batch)
            for signal in signals:
                signal.set()

    def _store_batch(self, batch: list[tuple[_Item, Future[None] | None]]) -> None:
        retried, self._unstored = self._unstored, []
        explanations = retried + [explanation for explanation, _ in batch]
        try:
            self._write(explanations)
        except Exception as exc:
            if not self._failing:
                _log.exception(
                    "kzai_guard: storing %d %s failed; kept in memory and tried again every %ss",
                    len(explanations),
                    self._noun,
                    RETRY_SECONDS,
                )
            self._unstored = explanations
            failure = StoreError(f"{self._noun} could not be stored: {exc}")
            for _, stored in batch:
                if stored is not None:
                    stored.set_exception(failure)
            stored_now = False
        else:
            if self._failing:
                _log.warning("kzai_guard: %s are stored again", self._noun)
            for item in explanations:
                if self._pending.get(item.decision_id) is item:
                    del self._pending[item.decision_id]
            for _, stored in batch:
                if stored is not None:
                    stored.set_result(None)
            stored_now = True
        with self._room:
            self._failing = not stored_now
            self._room.notify_all()


class PendingExplanation:
    """An explanation handed over as the decision function gave it: its JSON and digest are
    made off the request thread, by whichever needs them first (the archive's writer, the
    audit log's writer building the decision's record, or a read), once.

    A decision's record draft (:mod:`kzai_guard.decision_record`) is one and sets its fields,
    so that a decision hands one object to both writers."""

    __slots__ = ("_stored", "created_at", "decision_id", "explanation", "policy", "subject_ref")

    decision_id: str
    subject_ref: str
    policy: str
    created_at: datetime
    explanation: Explanation | None
    _stored: StoredExplanation | bool | None
    """``False`` until :meth:`stored` first ran."""

    def stored(self) -> StoredExplanation | None:
        """The explanation as stored; ``None`` if its JSON cannot be written (then it is
        neither stored nor served, and the decision's record says so), or there is none."""
        stored = self._stored
        if stored is False:
            explanation = self.explanation
            try:
                raw = None if explanation is None else explanation_json(explanation)
            except Exception:
                raw = None
            if raw is None:
                stored = None
            else:
                stored = StoredExplanation(
                    self.decision_id,
                    self.subject_ref,
                    self.policy,
                    self.created_at,
                    raw,
                    sha256_hex(raw),
                )
            # two threads may both get here: they make the same bytes, either result will do
            self._stored = stored
        return stored  # type: ignore[return-value]


class Explanations(Archive[StoredExplanation | PendingExplanation]):
    """The explanation archive of one guard: :class:`StoredExplanation` items, and
    :class:`PendingExplanation` ones whose JSON is made by the writer."""

    def __init__(
        self, store: Store, pending_limit: int = PENDING_LIMIT, *, durable: bool = False
    ) -> None:
        add = store.add_explanations

        def write(items: Sequence[StoredExplanation | PendingExplanation]) -> None:
            add([s for s in map(_stored, items) if s is not None])

        super().__init__(
            write, store.get_explanation, "explanations", pending_limit, durable=durable
        )

    def get(self, decision_id: str) -> StoredExplanation | None:
        """The explanation of ``decision_id``, stored or still queued."""
        item = super().get(decision_id)
        return None if item is None else _stored(item)


def _stored(item: StoredExplanation | PendingExplanation) -> StoredExplanation | None:
    return item if type(item) is StoredExplanation else item.stored()  # type: ignore[union-attr]


def released_when_stored(
    stored: Future[None], recorded: Future[None] | None, unlink: Callable[[], None]
) -> Future[None]:
    """A future that completes once the explanation is ``stored`` and the decision ``recorded``.

    Cancelling it cancels ``recorded`` (a record whose decision gave up waiting is not written,
    unless its writer has taken it already). It fails as ``recorded`` fails. If the explanation
    could not be stored, ``unlink`` runs first
    (the response must not carry a ``Link`` that another host cannot serve) and the decision
    goes on: its explanation is still served by this process, and stored when the store is back.
    """
    released: Future[None] = Future()
    waiting = [1 if recorded is None else 2]
    lock = threading.Lock()

    def settle(_: Future[None]) -> None:
        with lock:
            waiting[0] -= 1
            if waiting[0]:
                return
        if stored.exception() is not None:
            unlink()
        if released.done():  # its waiter gave up (cancelled it): nobody is told
            return
        failure = None if recorded is None or recorded.cancelled() else recorded.exception()
        try:
            if failure is None:
                released.set_result(None)
            else:
                released.set_exception(failure)
        except InvalidStateError:  # cancelled meanwhile by its waiter
            pass

    def give_up(_: Future[None]) -> None:
        if released.cancelled() and recorded is not None:
            recorded.cancel()

    released.add_done_callback(give_up)
    stored.add_done_callback(settle)
    if recorded is not None:
        recorded.add_done_callback(settle)
    return released
