"""Hypothesis strategies shared by the fuzz tests."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st


def json_values(
    *specials: Any, text_size: int = 10, max_size: int = 3, max_leaves: int = 10
) -> st.SearchStrategy[Any]:
    """Any value ``json.loads`` can give (``NaN`` and ``Infinity`` included, integers of any
    size), nested in lists and objects, with ``specials`` drawn among the scalars."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.sampled_from([math.inf, -math.inf, math.nan, *specials])
        | st.text(max_size=text_size)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=max_size) | st.dictionaries(st.text(max_size=text_size), inner)
        ),
        max_leaves=max_leaves,
    )
