"""Explanations of automated decisions (KZ-AI 16(1)(4), AI Act 86, GDPR 15(1)(h)).

The decision function gives an :class:`Explanation`; the guard fills what the function left out
from the policy and guard defaults (:func:`complete`), stores it under the decision id and hands
it to the person in the language they ask for (:func:`localise`).
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
    "explanation_json",
    "localise",
    "missing_fields",
    "with_defaults",
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
            if not text.isascii():
                try:
                    text.encode()
                except UnicodeEncodeError:
                    # as pydantic refuses in every other text: such a string cannot be JSON
                    raise ValueError(
                        f"summary[{language.value}] must be UTF-8 text (it holds a lone surrogate)"
                    ) from None
        return value


class ExplanationDefaults(BaseModel):
    """What the guard fills into an explanation when the decision function left it out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    how_to_object: str | None = None
    human_contact: str | None = None
    contact: str | None = None
    model: ModelInfo | None = None

    @property
    def complete(self) -> bool:
        """True when these defaults give every field an explanation may leave out."""
        return all(getattr(self, name) is not None for name in _COMPLETED_BY_DEFAULTS)


_COMPLETED_BY_DEFAULTS = ("how_to_object", "human_contact", "contact", "model")
_JSON_KEYS = orjson.OPT_NON_STR_KEYS
"""The summary's keys are :class:`Language` members: orjson writes their values."""
_LANGUAGE_CODES = tuple(lang.value for lang in _LANGUAGE_ORDER)


def complete(explanation: Explanation, defaults: ExplanationDefaults) -> Explanation:
    """``explanation`` with every field it left empty taken from ``defaults``."""
    updates = {
        name: getattr(defaults, name)
        for name in _COMPLETED_BY_DEFAULTS
        if getattr(explanation, name) is None and getattr(defaults, name) is not None
    }
    return explanation.model_copy(update=updates) if updates else explanation


def missing_fields(explanation: Explanation, defaults: ExplanationDefaults) -> list[str]:
    """Fields a complete explanation must have that neither it nor ``defaults`` gives."""
    return [
        name
        for name in _COMPLETED_BY_DEFAULTS
        if getattr(explanation, name) is None and getattr(defaults, name) is None
    ]


def explanation_json(explanation: Explanation) -> bytes:
    """The explanation as the decision function gave it, as JSON (the form that is digested).

    Byte for byte what pydantic's serializer writes. orjson writes it straight from the
    model's fields, several times faster; pydantic serves subclasses and whatever orjson
    refuses (a string that is not valid UTF-8), so that it raises its own error there.
    """
    if type(explanation) is Explanation:
        try:
            return orjson.dumps(explanation.__dict__, default=_nested_fields, option=_JSON_KEYS)
        except orjson.JSONEncodeError:
            pass
    return explanation.__pydantic_serializer__.to_json(explanation)


def _nested_fields(value: object) -> dict[str, Any]:
    """The fields of the models an explanation holds, for orjson; anything else it refuses."""
    if type(value) is Factor or type(value) is ModelInfo:
        return value.__dict__
    raise TypeError(f"{type(value).__name__} is not part of an explanation")


def explanation_digest(explanation: Explanation) -> str:
    """SHA-256 (hex) of :func:`explanation_json`; goes into the audit record."""
    return hashlib.sha256(explanation_json(explanation)).hexdigest()


def with_defaults(body: dict[str, Any], defaults: ExplanationDefaults) -> dict[str, Any]:
    """A JSON explanation completed from ``defaults`` (what the person is shown)."""
    out = dict(body)
    for name, value in defaults.model_dump(mode="json").items():
        if out.get(name) is None and value is not None:
            out[name] = value
    return out


def localise(body: dict[str, Any], language: str | None = None) -> dict[str, Any]:
    """A JSON explanation for the person, its ``summary`` in ``language`` if it exists.

    A missing language falls back to the first of kk, ru, en that exists; the payload then says
    ``"summary_fallback": true``. ``summaries`` keeps every language given.
    """
    summaries: dict[str, str] = body["summary"]
    available = [code for code in _LANGUAGE_CODES if code in summaries]
    if language is not None and language in summaries:
        chosen, fallback = language, False
    else:
        chosen, fallback = available[0], language is not None
    out = {key: value for key, value in body.items() if key != "summary"}
    out["summary"] = summaries[chosen]
    out["summary_language"] = chosen
    out["summary_fallback"] = fallback
    out["summaries"] = summaries
    return out
