"""Objects that re-make their threads, locks and connections in a child process after a fork.

A process forked from one with a guard (``gunicorn --preload``, ``multiprocessing`` with the
``fork`` start method) inherits copies of the guard's objects, but not its threads, and its
locks and connections may be in any state. Each object that holds such things registers
itself with :func:`remake_after_fork`; in the child, right after the fork and before any of
the child's code runs, its ``after_fork_in_child`` method re-makes them. Objects are called in
the order they registered, so a store is ready before the cache that reads it restarts its
watcher. An object may also define ``before_fork`` and ``after_fork_in_parent`` (both called in
the forking process): a store holds its lock across the fork that way, so that no connection is
in the middle of a call when the child is made. Only weak references are kept: registering keeps
nothing alive.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "remake_after_fork"]

_log = logging.getLogger("kzai_guard")


class ForkAware(Protocol):
    """Something that holds threads, locks or connections."""

    def after_fork_in_child(self) -> None:
        """Re-make (or drop, to re-make lazily) what the fork left unusable; no I/O here."""
        ...


_registered: list[weakref.ref[ForkAware]] = []
_registry_lock = threading.Lock()


def remake_after_fork(obj: ForkAware) -> None:
    """Call ``obj.after_fork_in_child()`` in every child process forked after this call."""
    with _registry_lock:
        _registered[:] = [ref for ref in _registered if ref() is not None]
        _registered.append(weakref.ref(obj))


def _live() -> list[ForkAware]:
    return [obj for obj in (ref() for ref in list(_registered)) if obj is not None]


def _call(objects: list[ForkAware], method: str) -> None:
    for obj in objects:
        hook = getattr(obj, method, None)
        if hook is not None:
            hook()


_held: list[ForkAware] = []


def _before() -> None:
    _held[:] = _live()
    _call(_held, "before_fork")


def _in_parent() -> None:
    held, _held[:] = list(_held), []
    _call(held, "after_fork_in_parent")


def _in_child() -> None:
    global _registry_lock
    # The lock may have been held by another thread of the parent at the fork.
    _registry_lock = threading.Lock()
    _held.clear()
    for obj in _live():
        try:
            obj.after_fork_in_child()
        except Exception:
            _log.exception("kzai_guard: re-making %r after a fork failed", obj)


os.register_at_fork(before=_before, after_in_parent=_in_parent, after_in_child=_in_child)
