"""The explanation archive holds a bounded backlog: decisions wait for a slow store, never for a
failing one."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kzai_guard.explanations import Explanations
from kzai_guard.stores.base import StoredExplanation
from kzai_guard.stores.url import open_store


class GatedStore:
    """A store whose explanation writes wait for ``open`` (or fail while ``broken``)."""

    def __init__(self) -> None:
        self.store = open_store("memory://")
        self.open = threading.Event()
        self.broken = False

    def add_explanations(self, explanations: Sequence[StoredExplanation]) -> None:
        if self.broken:
            raise OSError("disk full")
        self.open.wait(10)
        self.store.add_explanations(explanations)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def explanation(n: int) -> StoredExplanation:
    return StoredExplanation(f"d-{n}", "ref", "loan", datetime.now(UTC), b"{}", "00" * 32)


def test_a_decision_waits_while_the_backlog_is_full_and_goes_on_once_the_store_writes() -> None:
    store = GatedStore()
    archive = Explanations(store, pending_limit=4)  # type: ignore[arg-type]
    for n in range(4):
        archive.put(explanation(n))
    fifth = threading.Thread(target=archive.put, args=(explanation(4),))
    fifth.start()
    fifth.join(0.3)
    waited = fifth.is_alive()
    store.open.set()
    fifth.join(5)
    archive.flush()
    assert waited and not fifth.is_alive()
    assert [archive.get(f"d-{n}") is not None for n in range(5)] == [True] * 5
    archive.close()


def test_a_failing_store_never_makes_a_decision_wait_and_loses_nothing() -> None:
    store = GatedStore()
    store.broken = True
    archive = Explanations(store, pending_limit=2)  # type: ignore[arg-type]
    archive.put(explanation(0))
    archive.flush()
    started = time.monotonic()
    for n in range(1, 6):
        archive.put(explanation(n))
    took = time.monotonic() - started
    archive.flush()
    assert took < 1.0
    assert [archive.get(f"d-{n}") is not None for n in range(6)] == [True] * 6
    archive.close()
