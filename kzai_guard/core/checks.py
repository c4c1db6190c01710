"""Start-up checks: configurations the law forbids fail before the service takes a request.

:func:`check_policy` raises on what must not start; :func:`findings` lists what a compliance
officer should look at (``kzai-guard check``) but that does not stop the service.
"""

from __future__ import annotations

from datetime import date

from kzai_guard.core.monitoring import protected_inputs
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.profiles import Profile, accepted_bases
from kzai_guard.core.vocabulary import Autonomy, BasisKind, Capability, Fallback, Significance
from kzai_guard.errors import ConfigurationError, ProhibitedPractice

__all__ = [
    "PROHIBITED",
    "RISK_REVIEW_MAX_AGE_DAYS",
    "check_explanation_sources",
    "check_policy",
    "findings",
]

PROHIBITED: dict[Capability, str] = {
    Capability.SUBLIMINAL_MANIPULATION: "KZ-AI 17(3)(1): subliminal or manipulative techniques",
    Capability.VULNERABILITY_EXPLOITATION: "KZ-AI 17(3)(2): exploiting a person's vulnerability",
    Capability.UNLAWFUL_PERSONAL_DATA_PROCESSING: (
        "KZ-AI 17(3)(4): processing personal data in breach of the personal-data law"
    ),
    Capability.BIOMETRIC_CATEGORISATION: (
        "KZ-AI 17(3)(5): biometric classification to infer race, beliefs or similar"
    ),
    Capability.PROHIBITED_OUTPUT: "KZ-AI 17(3)(7): creating results prohibited by law",
}
"""Capabilities that refuse to start, with the provision that forbids them."""

RISK_REVIEW_MAX_AGE_DAYS = 365
"""KZ-AI 18: risks are reviewed at least yearly."""


def check_policy(policy: DecisionPolicy, profile: Profile) -> None:
    """Raise ``ProhibitedPractice`` or ``ConfigurationError`` if ``policy`` may not run."""
    for capability in sorted(policy.capabilities, key=lambda c: c.value):
        if capability in PROHIBITED:
            raise ProhibitedPractice(
                f"policy {policy.name!r}: capability {capability.value!r} is prohibited "
                f"({PROHIBITED[capability]}); remove it from 'capabilities'"
            )
    if Capability.SOCIAL_SCORING in policy.capabilities and policy.statutory_basis is None:
        raise ProhibitedPractice(
            f"policy {policy.name!r}: 'social-scoring' is prohibited unless a law provides for it "
            "(KZ-AI 17(3)(3)); declare 'statutory_basis' or remove the capability"
        )
    if (
        Capability.EMOTION_RECOGNITION in policy.capabilities
        and policy.purpose is None
        and policy.statutory_basis is None
    ):
        raise ConfigurationError(
            f"policy {policy.name!r}: 'emotion-recognition' needs the person's consent on every "
            "request (KZ-AI 17(3)(6)); set 'purpose' to the consent purpose"
        )
    protected = protected_inputs(policy.inputs, policy.monitoring)
    if protected:
        raise ConfigurationError(
            f"policy {policy.name!r}: its inputs include the protected attribute(s) "
            f"{', '.join(map(repr, protected))} (KZ-AI 6: no discrimination on these grounds); "
            "remove them from 'inputs'"
        )
    if policy.significance.is_significant and policy.autonomy is not Autonomy.LOW:
        has_basis = (
            policy.purpose is not None
            or policy.statutory_basis is not None
            or (policy.contract_necessity and BasisKind.CONTRACT in accepted_bases(profile))
        )
        if not has_basis and policy.fallback is not Fallback.HUMAN:
            raise ConfigurationError(
                f"policy {policy.name!r}: a significant decision with {policy.autonomy.value} "
                "autonomy can be made without a human, so it needs a legal basis; set 'purpose' "
                "(consent), 'statutory_basis', or fallback = 'human'"
            )


def check_explanation_sources(policy: DecisionPolicy, contact: str | None) -> None:
    """Raise when the explanations of ``policy`` could not name the model or a contact.

    An explanation must name the model and a contact (KZ-AI 16(1)(4)); a decision whose
    explanation lacks them is withheld, so a policy that owes explanations must declare its
    model, and the guard a contact, before the service takes a request.
    """
    if policy.significance is Significance.NONE:
        return
    if policy.model is None:
        raise ConfigurationError(
            f"policy {policy.name!r}: its decisions owe an explanation naming the model; "
            "set 'model' (ModelInfo(name=..., version=...))"
        )
    if contact is None:
        raise ConfigurationError(
            f"policy {policy.name!r}: its decisions owe an explanation with a contact; "
            "give the guard contact='...' (or [guard] contact in the file)"
        )


def findings(policy: DecisionPolicy, today: date) -> list[str]:
    """Pre-compliance findings that do not stop the service (missing or stale risk review)."""
    out: list[str] = []
    if policy.risk_reviewed_on is None:
        out.append(
            f"policy {policy.name!r}: no risk review date (KZ-AI 18); set 'risk_reviewed_on'"
        )
    elif (today - policy.risk_reviewed_on).days > RISK_REVIEW_MAX_AGE_DAYS:
        out.append(
            f"policy {policy.name!r}: risk review of {policy.risk_reviewed_on.isoformat()} is over "
            f"{RISK_REVIEW_MAX_AGE_DAYS} days old (KZ-AI 18); review the risks again"
        )
    if policy.contract_necessity and policy.purpose is None and policy.statutory_basis is None:
        out.append(
            f"policy {policy.name!r}: relies on contract necessity alone, which the kz profile "
            "does not accept"
        )
    return out
