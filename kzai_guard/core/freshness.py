"""When cached facts may be trusted, and how long to wait before reconnecting to a store.

Pure rules (no clock, no I/O): the caller passes the times, read from a monotonic clock.
"""

from __future__ import annotations

__all__ = ["facts_trusted", "reconnect_delay"]


def facts_trusted(read_at: float, now: float, stale_after: float) -> bool:
    """True when facts last confirmed by the store at ``read_at`` may still decide at ``now``.

    Facts are trusted for ``stale_after`` seconds after the last successful read of the store's
    change feed, and never after: a process that cannot read the feed cannot know what other
    processes changed (a withdrawn consent, a thrown kill switch).
    """
    return now - read_at <= stale_after


def reconnect_delay(failures: int, first: float, longest: float) -> float:
    """How long to wait before the next connection attempt after ``failures`` failed ones.

    Doubles from ``first`` with each failure and never exceeds ``longest``; no wait before the
    first attempt (``failures`` 0).
    """
    if failures <= 0:
        return 0.0
    if failures > 64:
        return longest
    return min(longest, first * 2.0 ** (failures - 1))
