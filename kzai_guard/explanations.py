"""Explanations kept for retrieval by decision id, written by a background thread.

The request path hands over the explanation's JSON as the decision function gave it (the bytes
its audit digest covers); a writer thread stores them in batches. Woken by the first of a
batch with less than a batch queued, it lingers :data:`LINGER_SECONDS` for more before it
writes, so that a quiet service pays one store transaction per few milliseconds rather than
one per decision. Until then,
:meth:`Explanations.get` serves the queued copy, so a person who follows the ``Link`` at once
still finds it. The guard's defaults (contact, how to object, model) are applied when an
explanation is read, so the person always sees the current contact details.
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
_log = logging.getLogger("kzai_guard")
_STOP = object()


class Explanations:
    """The explanation archive of one guard."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[StoredExplanation | threading.Event | object] = (
            queue.SimpleQueue()
        )
        self._pending: dict[str, StoredExplanation] = {}
        self._thread = threading.Thread(
            target=self._run, name="kzai-guard-explanations", daemon=True
        )
        self._thread.start()

    def put(self, explanation: StoredExplanation) -> None:
        """Queue an explanation for storage (no I/O on the caller's thread)."""
        self._pending[explanation.decision_id] = explanation
        self._queue.put(explanation)

    def get(self, decision_id: str) -> StoredExplanation | None:
        """The explanation of ``decision_id``, stored or still queued."""
        pending = self._pending.get(decision_id)
        return pending if pending is not None else self._store.get_explanation(decision_id)

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
            return
        for item in batch:
            if self._pending.get(item.decision_id) is item:
                del self._pending[item.decision_id]
