"""Explanations of automated decisions (KZ-AI 16(1)(4), AI Act 86, GDPR 15(1)(h)).

The decision function gives an :class:`Explanation`; the guard fills what the function left out
from the policy and guard defaults (:func:`complete`), stores it under the decision id and hands
it to the person in the language they ask for (:func:`render`).
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kzai_guard.core.policy import ModelInfo
from kzai_guard.core.vocabulary import Language

__all__ = [
    "Direction",
    "Explanation",
    "ExplanationDefaults",
    "Factor",
    "complete",
    "explanation_digest",
    "missing_fields",
    "render",
]

_TEXT = 2000
_LANGUAGE_ORDER = (Language.KK, Language.RU, Language.EN)


class Direction(enum.StrEnum):
    """Which way a factor pushed the decision."""

    FAVOURABLE = "favourable"
    UNFAVOURABLE = "unfavourable"
    NEUTRAL = "neutral"


class Factor(BaseModel):
    """One of the main factors of a decision, with its direction and relative weight (0 to 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    direction: Direction
    weight: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    value: str | None = Field(default=None, max_length=200)


class Explanation(BaseModel):
    """What a person is told about an automated decision.

    Example::

        Explanation(
            summary={"ru": "Заявка одобрена", "en": "Application approved"},
            factors=[Factor(name="income", direction=Direction.FAVOURABLE, weight=0.6)],
            ai_role="The score was computed by a model; no person reviewed it.",
            consequences="The loan is granted on the offered terms.",
        )
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    summary: dict[Language, str] = Field(min_length=1)
    factors: tuple[Factor, ...] = Field(default=(), max_length=50)
    ai_role: str = Field(min_length=1, max_length=_TEXT)
    consequences: str = Field(min_length=1, max_length=_TEXT)
    how_to_object: str | None = Field(default=None, min_length=1, max_length=_TEXT)
    human_contact: str | None = Field(default=None, min_length=1, max_length=_TEXT)
    contact: str | None = Field(default=None, min_length=1, max_length=_TEXT)
    model: ModelInfo | None = None

    @field_validator("summary")
    @classmethod
    def _summaries_are_text(cls, value: dict[Language, str]) -> dict[Language, str]:
        for language, text in value.items():
            if not text.strip() or len(text) > _TEXT:
                raise ValueError(f"summary[{language.value}] must be 1 to {_TEXT} characters")
        return value


class ExplanationDefaults(BaseModel):
    """What the guard fills into an explanation when the decision function left it out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    how_to_object: str | None = None
    human_contact: str | None = None
    contact: str | None = None
    model: ModelInfo | None = None


_REQUIRED_AFTER_DEFAULTS = ("how_to_object", "human_contact", "contact", "model")


def complete(explanation: Explanation, defaults: ExplanationDefaults) -> Explanation:
    """``explanation`` with every field it left empty taken from ``defaults``."""
    updates = {
        name: getattr(defaults, name)
        for name in _REQUIRED_AFTER_DEFAULTS
        if getattr(explanation, name) is None and getattr(defaults, name) is not None
    }
    return explanation.model_copy(update=updates) if updates else explanation


def missing_fields(explanation: Explanation) -> list[str]:
    """Fields a complete explanation must have but this one lacks."""
    return [name for name in _REQUIRED_AFTER_DEFAULTS if getattr(explanation, name) is None]


def explanation_digest(explanation: Explanation) -> str:
    """SHA-256 (hex) of the explanation's canonical JSON; goes into the audit record."""
    data = explanation.model_dump(mode="json")
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def render(explanation: Explanation, language: Language | None = None) -> dict[str, Any]:
    """The explanation as JSON for the person, its summary in ``language`` if given.

    A missing language falls back to the first of kk, ru, en that exists; the payload then says
    ``"summary_fallback": true`` and which language it holds.
    """
    wanted = language or next(lang for lang in _LANGUAGE_ORDER if lang in explanation.summary)
    if wanted in explanation.summary:
        chosen, fallback = wanted, False
    else:
        chosen = next(lang for lang in _LANGUAGE_ORDER if lang in explanation.summary)
        fallback = True
    data = explanation.model_dump(mode="json", exclude={"summary"})
    data["summary"] = explanation.summary[chosen]
    data["summary_language"] = chosen.value
    data["summary_fallback"] = fallback
    data["summaries"] = {lang.value: text for lang, text in explanation.summary.items()}
    return data
