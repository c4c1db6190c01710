"""A bound on how long one store call may wait on a database that went silent.

A link whose packets are held (not refused) gives no error: the server never sees the query,
so its own timeouts cannot fire, and the operating system keeps the socket open while
something still acknowledges it. :class:`CallWatchdog` watches the one call a store has in
flight and, once it has run for longer than its limit, shuts the connection's socket down:
the driver's wait ends with an error, the store drops the connection and the caller gets a
:class:`~kzai_guard.errors.StoreError` instead of waiting for the link to heal.

The thread starts at the first call in each process (after a fork the child starts its own).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

__all__ = ["CALL_LIMIT_S", "CallWatchdog"]

CALL_LIMIT_S = 6.0
"""How long one store call may run before its connection is cut: longer than the sessions'
``lock_timeout`` (5 s), so that a lock wait ends with the server's own error first."""
_TICK_S = 0.1
_log = logging.getLogger("kzai_guard")


class CallWatchdog:
    """Cuts the connection of a call that runs for longer than ``limit`` seconds."""

    def __init__(self, cut: Callable[[Any], None], limit: float = CALL_LIMIT_S) -> None:
        self._cut = cut
        self.limit = limit
        self._call: tuple[float, Any] | None = None
        self.fired = False
        """Whether the call in flight was cut (the store must not retry it)."""
        self._pid = 0
        self._stopped = threading.Event()

    def begin(self, conn: Any) -> None:
        """A call on ``conn`` starts (the caller holds the store's lock)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._stopped = threading.Event()
            threading.Thread(target=self._watch, name="kzai-guard-store-watch", daemon=True).start()
        self.fired = False
        self._call = (monotonic(), conn)

    def end(self) -> None:
        """The call is over, however it ended."""
        self._call = None

    def stop(self) -> None:
        """Stop the thread."""
        self._stopped.set()

    def _watch(self) -> None:
        stopped = self._stopped
        while not stopped.wait(_TICK_S):
            call = self._call
            if call is not None and monotonic() - call[0] > self.limit and call is self._call:
                self.fired = True
                self._call = None
                _log.warning(
                    "kzai_guard: a store call got no answer within %.1fs; its connection is cut",
                    self.limit,
                )
                try:
                    self._cut(call[1])
                except Exception:  # the connection may be gone already: nothing left to cut
                    _log.debug(
                        "kzai_guard: cutting a silent store connection failed", exc_info=True
                    )
