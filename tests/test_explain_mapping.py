"""``kzai_guard.explain`` with any mapping: an explanation or the reason it is invalid, no raise."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import kzai_guard as kg
from tests.http.conftest import EXPLANATION
from tests.strategies import json_values

JSON_VALUES = json_values("", " ", "kk", "ru", "en", "favourable")
FIELDS = [*EXPLANATION, "how_to_object", "human_contact", "contact", "model"]
MAPPINGS = (
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), JSON_VALUES)
    | st.tuples(
        st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=3),
        st.sets(st.sampled_from(list(EXPLANATION)), max_size=2),
    ).map(lambda c: {k: v for k, v in {**EXPLANATION, **c[0]}.items() if k not in c[1]})
    | st.dictionaries(
        JSON_VALUES.filter(lambda k: k == k and not isinstance(k, list | dict)), JSON_VALUES
    )
)


@settings(max_examples=300)
@given(mapping=MAPPINGS)
def test_any_mapping_sets_an_explanation_or_its_error(mapping: dict[Any, Any]) -> None:
    with kg.decision_context("A-1") as context:
        kg.explain(mapping)
    if context.explanation is None:
        assert context.explanation_error and "invalid field(s)" in context.explanation_error
    else:
        assert context.explanation_error is None
        assert context.explanation == kg.Explanation.model_validate(mapping)


def test_a_valid_mapping_sets_the_explanation_it_describes() -> None:
    with kg.decision_context("A-1") as context:
        kg.explain(EXPLANATION)
    assert context.explanation == kg.Explanation.model_validate(EXPLANATION)
    assert context.explanation_error is None
