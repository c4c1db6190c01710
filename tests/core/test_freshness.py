"""The freshness rule (cached facts are trusted for stale_after seconds after the last read of
the change feed, never after) and the reconnection delays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.freshness import facts_trusted, reconnect_delay

_times = st.floats(min_value=0, max_value=1e9, allow_nan=False)
_bounds = st.floats(min_value=1e-3, max_value=300, allow_nan=False)


@given(
    read_at=_times,
    stale_after=_bounds,
    within=st.floats(min_value=0, max_value=0.99),
    beyond=st.floats(min_value=1e-3, max_value=1e6),
)
def test_facts_are_trusted_within_the_bound_after_a_read_and_never_beyond_it(
    read_at: float, stale_after: float, within: float, beyond: float
) -> None:
    assert facts_trusted(read_at, read_at, stale_after)
    assert facts_trusted(read_at, read_at + within * stale_after, stale_after)
    assert not facts_trusted(read_at, read_at + stale_after + beyond, stale_after)


@given(read_at=_times, stale_after=_bounds, earlier=_times, later=_times)
def test_once_stale_facts_stay_stale_until_the_feed_is_read_again(
    read_at: float, stale_after: float, earlier: float, later: float
) -> None:
    first, second = sorted((read_at + earlier, read_at + later))
    if not facts_trusted(read_at, first, stale_after):
        assert not facts_trusted(read_at, second, stale_after)


@given(now=_times, stale_after=_bounds, reads=st.lists(_times, min_size=2, max_size=2))
def test_a_newer_read_never_makes_facts_less_trusted(
    now: float, stale_after: float, reads: list[float]
) -> None:
    older, newer = sorted(reads)
    if facts_trusted(older, now, stale_after):
        assert facts_trusted(newer, now, stale_after)


@given(
    failures=st.integers(min_value=0, max_value=10_000),
    first=st.floats(min_value=1e-3, max_value=1.0),
    longest=st.floats(min_value=1.0, max_value=60.0),
)
def test_the_wait_before_reconnecting_grows_with_failures_and_is_bounded(
    failures: int, first: float, longest: float
) -> None:
    delay = reconnect_delay(failures, first, longest)
    following = reconnect_delay(failures + 1, first, longest)
    assert 0.0 <= delay <= following <= longest
    assert (delay == 0.0) == (failures == 0)
    assert reconnect_delay(1, first, longest) == min(first, longest)
