"""Explanations: validation, defaults, digest and language fallback."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from kzai_guard.core.explanation import (
    Direction,
    Explanation,
    ExplanationDefaults,
    Factor,
    complete,
    explanation_digest,
    explanation_json,
    localise,
    missing_fields,
    with_defaults,
)
from kzai_guard.core.policy import ModelInfo
from kzai_guard.core.vocabulary import Language

BASE = Explanation(
    summary={Language.RU: "Заявка одобрена"},
    factors=(Factor(name="income", direction=Direction.FAVOURABLE, weight=0.6),),
    ai_role="A model computed the score.",
    consequences="The loan is granted.",
)
DEFAULTS = ExplanationDefaults(
    how_to_object="Write to us.",
    human_contact="Call 1414.",
    contact="support@example.kz",
    model=ModelInfo(name="scorer", version="1.4"),
)


def test_an_explanation_needs_at_least_one_summary() -> None:
    with pytest.raises(ValidationError, match="summary"):
        Explanation(summary={}, ai_role="x", consequences="y")


def test_a_blank_summary_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"summary\[en\]"):
        Explanation(summary={Language.EN: "   "}, ai_role="x", consequences="y")


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan"), float("inf")])
def test_a_factor_weight_outside_zero_to_one_is_refused(weight: float) -> None:
    with pytest.raises(ValidationError):
        Factor(name="income", direction=Direction.NEUTRAL, weight=weight)


def test_defaults_fill_only_what_the_function_left_out() -> None:
    own = BASE.model_copy(update={"contact": "own@example.kz"})
    completed = complete(own, DEFAULTS)
    assert completed.contact == "own@example.kz"
    assert completed.how_to_object == "Write to us."
    assert completed.model == DEFAULTS.model
    assert missing_fields(completed, ExplanationDefaults()) == []
    as_json = with_defaults(own.model_dump(mode="json"), DEFAULTS)
    assert as_json == completed.model_dump(mode="json")


def test_missing_fields_are_named_when_no_default_exists() -> None:
    assert missing_fields(BASE, ExplanationDefaults()) == [
        "how_to_object",
        "human_contact",
        "contact",
        "model",
    ]


def as_body(explanation: Explanation) -> dict[str, object]:
    return with_defaults(explanation.model_dump(mode="json"), DEFAULTS)


def test_a_missing_language_falls_back_with_a_marker() -> None:
    body = localise(as_body(BASE), "kk")
    assert body["summary"] == "Заявка одобрена"
    assert body["summary_language"] == "ru"
    assert body["summary_fallback"] is True


def test_an_available_language_is_served_without_the_marker() -> None:
    body = localise(as_body(BASE), "ru")
    assert (body["summary_language"], body["summary_fallback"]) == ("ru", False)


@given(st.text(min_size=1, max_size=50).filter(str.strip), st.text(min_size=1, max_size=50))
def test_the_digest_is_stable_and_changes_with_the_content(summary: str, other: str) -> None:
    one = Explanation(summary={Language.EN: summary}, ai_role="r", consequences="c")
    same = Explanation(summary={Language.EN: summary}, ai_role="r", consequences="c")
    assert explanation_digest(one) == explanation_digest(same)
    changed = one.model_copy(update={"consequences": "c" + other})
    assert explanation_digest(changed) != explanation_digest(one)


def test_without_a_language_the_first_of_kk_ru_en_is_served_unmarked() -> None:
    body = localise(
        as_body(BASE.model_copy(update={"summary": {Language.EN: "e", Language.RU: "r"}}))
    )
    assert (body["summary"], body["summary_fallback"]) == ("r", False)
    assert body["summaries"] == {"en": "e", "ru": "r"}


_TEXT = st.text(min_size=1, max_size=40).filter(str.strip)
_FACTORS = st.builds(
    Factor,
    name=st.text(min_size=1, max_size=40),
    direction=st.sampled_from(Direction),
    weight=st.floats(0.0, 1.0),
    value=st.none() | st.text(max_size=40),
)
_MODELS = st.none() | st.builds(
    ModelInfo,
    name=st.from_regex(r"[\x21-\x7e]{1,20}", fullmatch=True),
    version=st.from_regex(r"[\x21-\x7e]{1,10}", fullmatch=True),
    provider=st.none() | st.text(max_size=20),
)
_EXPLANATIONS = st.builds(
    Explanation,
    summary=st.dictionaries(st.sampled_from(Language), _TEXT, min_size=1),
    factors=st.lists(_FACTORS, max_size=4).map(tuple),
    ai_role=_TEXT,
    consequences=_TEXT,
    how_to_object=st.none() | _TEXT,
    human_contact=st.none() | _TEXT,
    contact=st.none() | _TEXT,
    model=_MODELS,
)


@given(_EXPLANATIONS)
def test_the_json_is_byte_for_byte_what_pydantic_writes(explanation: Explanation) -> None:
    assert explanation_json(explanation) == explanation.model_dump_json().encode()


def test_a_string_json_cannot_hold_fails_as_pydantic_fails() -> None:
    # made without validation, which refuses such a string
    broken = BASE.model_copy(update={"ai_role": "a\ud800"})
    with pytest.raises(PydanticSerializationError, match="surrogates not allowed"):
        explanation_json(broken)


@pytest.mark.parametrize("text", ["a\ud800", "\udfff", "Заявка \ud83d одобрена"])
def test_a_summary_with_a_lone_surrogate_is_refused_as_every_other_text_is(text: str) -> None:
    with pytest.raises(ValidationError, match=r"summary\[en\] must be UTF-8 text"):
        Explanation(summary={Language.EN: text}, ai_role="r", consequences="c")
    with pytest.raises(ValidationError, match=r"string_unicode|surrogate"):
        Explanation(summary={Language.EN: "ok"}, ai_role=text, consequences="c")


def test_a_subclass_is_written_by_pydantic_with_its_own_fields() -> None:
    class Tagged(Explanation):
        tag: str = "t"

    tagged = Tagged(summary={Language.EN: "s"}, ai_role="r", consequences="c")
    assert explanation_json(tagged) == tagged.model_dump_json().encode()
    assert b'"tag":"t"' in explanation_json(tagged)
