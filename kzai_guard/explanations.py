"""Explanations kept for retrieval by decision id, written by a background thread.

The request path hands over the explanation's JSON as the decision function gave it (the bytes
its audit digest covers); a writer thread stores them in batches. Woken by the first of a
batch with less than a batch queued, it lingers :data:`LINGER_SECONDS` for more before it
writes, so that a quiet service pays one store transaction per few milliseconds rather than
one per decision. Until then,
:meth:`Explanations.get` serves the queued copy, so a person who follows the ``Link`` at once
still finds it. The guard's defaults (contact, how to object, model) are applied when an
explanation is read, so the person always sees the current contact details.

At most :data:`PENDING_LIMIT` explanations wait for the writer: a decision that finds that many
waits until the writer has stored a batch, so a service that decides faster than its store
writes holds a bounded backlog, not a growing one. While the store fails, nothing waits (the
explanations stay in memory and the failure is logged), so a broken store does not stall
decisions.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from kzai_guard.stores.base import Store, StoredExplanation

__all__ = ["LINGER_SECONDS", "Explanations"]

_BATCH = 256
LINGER_SECONDS = 0.005
"""How long the writer waits, after the first explanation of a batch, for more to arrive."""
PENDING_LIMIT = 16_384
"""How many explanations may wait for the writer before a decision waits for room."""
_ROOM_WAIT_SECONDS = 5.0
_log = logging.getLogger("kzai_guard")
_STOP = object()


class Explanations:
    """The explanation archive of one guard."""

    def __init__(self, store: Store, pending_limit: int = PENDING_LIMIT) -> None:
        if pending_limit < 1:
            raise ValueError("pending_limit must be at least 1")
        self._store = store
        self._limit = pending_limit
        self._room = threading.Condition()
        self._failing = False
        self._queue: queue.SimpleQueue[StoredExplanation | threading.Event | object] = (
            queue.SimpleQueue()
        )
        self._pending: dict[str, StoredExplanation] = {}
        self._thread = threading.Thread(
            target=self._run, name="kzai-guard-explanations", daemon=True
        )
        self._thread.start()

    def put(self, explanation: StoredExplanation) -> None:
        """Queue an explanation for storage (no I/O on the caller's thread).

        Waits while :data:`PENDING_LIMIT` explanations are already waiting for the writer
        (never while the store is failing, and at most a few seconds)."""
        if len(self._pending) >= self._limit and not self._failing:
            self._wait_for_room()
        self._pending[explanation.decision_id] = explanation
        self._queue.put(explanation)

    def _wait_for_room(self) -> None:
        with self._room:
            self._room.wait_for(
                lambda: len(self._pending) < self._limit or self._failing,
                timeout=_ROOM_WAIT_SECONDS,
            )

    def get(self, decision_id: str) -> StoredExplanation | None:
        """The explanation of ``decision_id``, stored or still queued."""
        pending = self._pending.get(decision_id)
        return pending if pending is not None else self._store.get_explanation(decision_id)

    def forget_subject(self, subject_ref: str) -> int:
        """Drop the explanations of ``subject_ref`` still held in memory (an erasure; call
        :meth:`flush` first, so that the writer holds none of them). Returns how many."""
        mine = [d for d, item in list(self._pending.items()) if item.subject_ref == subject_ref]
        for decision_id in mine:
            self._pending.pop(decision_id, None)
        return len(mine)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is stored."""
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError("explanations were not stored in time")

    def close(self) -> None:
        """Store what is queued and stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if isinstance(item, StoredExplanation) and self._queue.qsize() < _BATCH:
                time.sleep(LINGER_SECONDS)
            batch: list[StoredExplanation] = []
            signals: list[threading.Event] = []
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    signals.append(item)
                elif isinstance(item, StoredExplanation):
                    batch.append(item)
                if stop or len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._store_batch(batch)
            for signal in signals:
                signal.set()

    def _store_batch(self, batch: list[StoredExplanation]) -> None:
        try:
            self._store.add_explanations(batch)
        except Exception:
            _log.exception("kzai_guard: storing %d explanations failed; kept in memory", len(batch))
            stored = False
        else:
            stored = True
            for item in batch:
                if self._pending.get(item.decision_id) is item:
                    del self._pending[item.decision_id]
        with self._room:
            self._failing = not stored
            self._room.notify_all()
