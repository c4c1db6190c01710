"""Decision policies: what a decision type is, and what it relies on.

A :class:`DecisionPolicy` is data only (frozen, unknown fields rejected); the rules that read it
live in :mod:`kzai_guard.core.rules`.
"""

from __future__ import annotations

import hashlib
from datetime import date

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kzai_guard.core.data_basis import BasisInput
from kzai_guard.core.monitoring import DisparityMonitoring
from kzai_guard.core.vocabulary import (
    Autonomy,
    Capability,
    Domain,
    Fallback,
    Mode,
    RiskClass,
    Significance,
)

__all__ = ["DecisionPolicy", "ModelInfo", "StatutoryBasis", "policy_digest"]

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class StatutoryBasis(BaseModel):
    """A law that provides for the automated decision (KZ-AI 21(4), GDPR 22(2)(b)).

    ``mandatory`` marks a basis the person cannot refuse: an objection then does not route the
    decision to a human.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    law: str = Field(min_length=1, max_length=200, description="The law, e.g. 'Tax Code, art. 12'.")
    mandatory: bool = False


class ModelInfo(BaseModel):
    """The model that makes the decision; shown in explanations and the disclosure header."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
    version: str = Field(min_length=1, max_length=50, pattern=r"^[\x21-\x7e]+$")
    provider: str | None = Field(default=None, max_length=100)

    @property
    def label(self) -> str:
        """``name/version``, as written in the audit trail."""
        return f"{self.name}/{self.version}"


class DecisionPolicy(BaseModel):
    """One decision type and the law that applies to it.

    Example::

        DecisionPolicy(
            name="loan_approval",
            purpose="credit-scoring",
            domain=Domain.CREDIT,
            significance=Significance.LEGAL_EFFECT,
            autonomy=Autonomy.HIGH,
            risk=RiskClass.HIGH,
        )
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    name: str = Field(pattern=_NAME_PATTERN, description="Unique name of the decision type.")
    purpose: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The consent purpose this decision relies on.",
    )
    domain: Domain = Domain.OTHER
    significance: Significance
    autonomy: Autonomy
    risk: RiskClass
    statutory_basis: StatutoryBasis | None = None
    contract_necessity: bool = Field(
        default=False,
        description="Contract necessity as a basis (GDPR 22(2)(a)); the kz profile ignores it.",
    )
    notice_version: str | None = Field(
        default=None,
        max_length=64,
        description="A consent counts only if given for this version of the notice.",
    )
    fallback: Fallback = Fallback.BLOCK
    route_vulnerable: bool = Field(
        default=True, description="Send significant decisions about vulnerable people to a human."
    )
    capabilities: frozenset[Capability] = frozenset()
    mode: Mode = Mode.ENFORCE
    model: ModelInfo | None = None
    review_deadline_days: int | None = Field(default=None, ge=1, le=90)
    audit_fail_open: bool = Field(
        default=False,
        description="Let a non-significant decision through when the audit trail is down.",
    )
    risk_reviewed_on: date | None = Field(
        default=None, description="When the risk assessment was last reviewed (KZ-AI 18)."
    )
    inputs: frozenset[str] = Field(
        default=frozenset(), description="The data fields the decision's model takes."
    )
    monitoring: DisparityMonitoring | None = Field(
        default=None, description="Run-time disparity monitoring (KZ-AI 6)."
    )
    data_basis: tuple[BasisInput, ...] = Field(
        default=(),
        max_length=200,
        description="The inputs a decision rests on, given to the person (KZ-AI 16(1)(5)).",
    )

    @model_validator(mode="after")
    def _basis_needs_a_purpose(self) -> DecisionPolicy:
        if self.notice_version is not None and self.purpose is None:
            raise ValueError("notice_version needs a purpose: set purpose or drop notice_version")
        return self

    @model_validator(mode="after")
    def _basis_names_are_unique(self) -> DecisionPolicy:
        names = [item.name for item in self.data_basis]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"data_basis declares {', '.join(twice)} more than once")
        return self

    @property
    def digest(self) -> str:
        """SHA-256 of the policy's canonical JSON; names this exact version in the audit trail."""
        return policy_digest(self)


def policy_digest(policy: DecisionPolicy) -> str:
    """SHA-256 (hex) of the policy's canonical JSON form (sorted keys, sets sorted)."""
    data = policy.model_dump(mode="json")
    data["capabilities"] = sorted(data["capabilities"])
    # Left out while unset, so that policies written before these fields keep their digest.
    if data["inputs"]:
        data["inputs"] = sorted(data["inputs"])
    else:
        del data["inputs"]
    if not data["data_basis"]:
        del data["data_basis"]
    if data["monitoring"] is None:
        del data["monitoring"]
    else:
        for name in ("grounds", "protected_attributes"):
            data["monitoring"][name] = sorted(data["monitoring"][name])
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()
