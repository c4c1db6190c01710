"""The data behind a decision (KZ-AI 16(1)(5), GDPR 15(1), Digital Code art. 43).

A policy declares the inputs its decisions rest on (:class:`BasisInput`): request fields and
derived features, each with a :class:`Redaction` rule. The decision function reports their
values (``kg.data_basis({...})``); :func:`reported_values` refuses names the policy does not
declare and values that are not JSON scalars. What is kept is :func:`basis_json` (the values,
with a random salt, in canonical JSON); its SHA-256 goes into the decision's audit record. The
salt keeps the digest from confirming a guessed value (an income, a birth date) once the values
are erased. The person sees :func:`person_view`: every declared input, its value where the rule
shows it, its existence and the reason where the rule withholds it.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kzai_guard.errors import InvalidDataBasis

__all__ = [
    "MAX_TEXT_VALUE",
    "BasisInput",
    "BasisValue",
    "Redaction",
    "Source",
    "basis_digest",
    "basis_json",
    "declared_inputs",
    "missing_inputs",
    "person_view",
    "read_basis",
    "reported_values",
]

MAX_TEXT_VALUE = 1000
"""The longest text a reported value may be (characters)."""
_NAME_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"
_INTEGER_LIMIT = 2**53
"""Integers beyond this are not exact in every JSON reader: refused."""

BasisValue = str | int | float | bool | None
"""A reported value: a JSON scalar (finite numbers, integers within ±2^53, text up to
:data:`MAX_TEXT_VALUE` characters)."""


class Source(enum.StrEnum):
    """Where an input comes from."""

    REQUEST = "request"
    """A field of what the person (or the service on their behalf) submitted."""
    DERIVED = "derived"
    """A feature the service computed (a score, a ratio, a bureau lookup)."""


class Redaction(enum.StrEnum):
    """What the person is shown of an input."""

    SHOWN = "shown"
    """The value."""
    TRADE_SECRET = "trade_secret"
    """Not the value; that the input exists and why it is withheld (a trade secret)."""
    THIRD_PARTY = "third_party"
    """Not the value, which is other people's data; that the input exists and why."""


_DEFAULT_REASONS = {
    Redaction.TRADE_SECRET: "The value is the operator's trade secret.",
    Redaction.THIRD_PARTY: "The value is other people's personal data.",
}


class BasisInput(BaseModel):
    """One input a decision rests on, as the policy declares it.

    Example::

        BasisInput(name="monthly_income", source=Source.REQUEST, label="Monthly income")
        BasisInput(
            name="risk_score",
            source=Source.DERIVED,
            redaction=Redaction.TRADE_SECRET,
            reason="The scoring model's output is the bank's trade secret.",
        )
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN, description="The name the function reports it by.")
    source: Source
    redaction: Redaction = Redaction.SHOWN
    label: str | None = Field(
        default=None, min_length=1, max_length=200, description="What the person is told it is."
    )
    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Why the value is withheld; a default per rule when left out.",
    )

    @model_validator(mode="after")
    def _reason_only_when_withheld(self) -> BasisInput:
        if self.reason is not None and self.redaction is Redaction.SHOWN:
            raise ValueError(
                f"input {self.name!r} is shown: a reason is for withheld inputs; drop it or "
                "set redaction to trade_secret or third_party"
            )
        return self


def declared_inputs(inputs: tuple[BasisInput, ...]) -> Mapping[str, BasisInput]:
    """The inputs by name, in declaration order (made once per policy)."""
    return MappingProxyType({item.name: item for item in inputs})


def reported_values(
    declared: Mapping[str, BasisInput], values: Mapping[str, Any]
) -> dict[str, BasisValue]:
    """``values`` checked against ``declared``: a copy, or :class:`InvalidDataBasis`.

    >>> spec = declared_inputs((BasisInput(name="age", source=Source.REQUEST),))
    >>> reported_values(spec, {"age": 41})
    {'age': 41}
    """
    undeclared = sorted(str(name) for name in values if name not in declared)
    if undeclared:
        raise InvalidDataBasis(
            f"the policy does not declare the input(s) {', '.join(undeclared)}: add them to "
            f"its data_basis (declared: {', '.join(declared) or 'none'})"
        )
    out: dict[str, BasisValue] = {}
    for name, value in values.items():
        out[name] = _checked(name, value)
    return out


def missing_inputs(
    declared: Mapping[str, BasisInput], values: Mapping[str, BasisValue]
) -> tuple[str, ...]:
    """The declared inputs the function did not report, in declaration order (a finding)."""
    return tuple(name for name in declared if name not in values)


def basis_json(values: Mapping[str, BasisValue], salt: str) -> bytes:
    """What is kept: ``{"salt":..,"values":{..}}``, keys sorted, no white space, UTF-8.

    The same values and salt give the same bytes whatever order they were reported in.
    """
    return orjson.dumps({"salt": salt, "values": dict(values)}, option=orjson.OPT_SORT_KEYS)


def basis_digest(kept: bytes) -> str:
    """SHA-256 (hex) of :func:`basis_json`'s bytes: what the audit record holds."""
    return hashlib.sha256(kept).hexdigest()


def read_basis(kept: bytes) -> dict[str, BasisValue]:
    """The values of :func:`basis_json`'s bytes."""
    values: dict[str, BasisValue] = orjson.loads(kept)["values"]
    return values


def person_view(
    declared: Mapping[str, BasisInput], values: Mapping[str, BasisValue]
) -> list[dict[str, Any]]:
    """Every declared input as the person sees it, in declaration order.

    Each entry has ``name``, ``label``, ``source``, ``redaction`` and ``reported`` (whether the
    function reported it); a shown input has its ``value``; a withheld one ``withheld: true``
    and the ``reason``, never the value.
    """
    view: list[dict[str, Any]] = []
    for name, item in declared.items():
        entry: dict[str, Any] = {
            "name": name,
            "label": item.label,
            "source": item.source.value,
            "redaction": item.redaction.value,
            "reported": name in values,
        }
        if item.redaction is Redaction.SHOWN:
            entry["withheld"] = False
            entry["value"] = values.get(name)
        else:
            entry["withheld"] = True
            entry["reason"] = item.reason or _DEFAULT_REASONS[item.redaction]
        view.append(entry)
    return view


def _checked(name: str, value: object) -> BasisValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INTEGER_LIMIT <= value <= _INTEGER_LIMIT:
            return value
        raise InvalidDataBasis(f"input {name!r}: integers must lie within ±2^53")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise InvalidDataBasis(f"input {name!r}: numbers must be finite")
    if isinstance(value, str):
        if len(value) <= MAX_TEXT_VALUE:
            return value
        raise InvalidDataBasis(f"input {name!r}: text longer than {MAX_TEXT_VALUE} characters")
    raise InvalidDataBasis(
        f"input {name!r}: {type(value).__name__} is not a JSON scalar (text, number, true, "
        "false or null)"
    )
