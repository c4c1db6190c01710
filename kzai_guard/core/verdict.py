"""The verdict: what the rules decided about one decision request."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache

from kzai_guard.core.vocabulary import BasisKind

__all__ = ["Obligation", "Outcome", "Reason", "Verdict", "verdict"]


class Outcome(enum.StrEnum):
    """Allow the AI to decide, block the decision, or route it to a human."""

    ALLOW = "allow"
    BLOCK = "block"
    ROUTE = "route"


class Reason(enum.StrEnum):
    """Why the verdict is what it is; stable strings, used in problem types and the audit trail."""

    NOT_SIGNIFICANT = "not-significant"
    HUMAN_DECISION = "human-decision"
    CONSENT = "consent"
    STATUTORY_BASIS = "statutory-basis"
    CONTRACT_NECESSITY = "contract-necessity"
    SUSPENDED = "suspended"
    NO_LEGAL_BASIS = "no-legal-basis"
    EMOTION_CONSENT_REQUIRED = "emotion-consent-required"
    OBJECTION = "objection"
    VULNERABLE_SUBJECT = "vulnerable-subject"
    HUMAN_REQUIRED = "human-required"
    DISPARITY = "disparity"
    """The policy's outcomes crossed its disparity thresholds (KZ-AI 6) and its policy routes
    what the AI would decide to humans until an officer clears it."""
    SUBJECT_MISSING = "subject-missing"
    """Not a rule's verdict: the request did not name its subject (the rules never ran)."""
    SUBJECT_INVALID = "subject-invalid"
    """Not a rule's verdict: the subject identifier was unusable (the rules never ran)."""
    FACTS_UNAVAILABLE = "facts-unavailable"
    """Not a rule's verdict: the store's facts could not be read, or not recently enough (the
    rules never ran)."""


class Obligation(enum.StrEnum):
    """What an allowed decision must carry."""

    DISCLOSURE = "disclosure"
    """Tell the person that AI was used (KZ-AI 21(1), AI Act 50(1))."""
    EXPLANATION = "explanation"
    """Give an explanation with the right to object (KZ-AI 7(2), 16(1)(4))."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome, reason, the basis relied on (for ``allow``) and the obligations that follow."""

    outcome: Outcome
    reason: Reason
    basis: BasisKind | None
    obligations: frozenset[Obligation]

    @property
    def allowed(self) -> bool:
        """True when the AI may make the decision."""
        return self.outcome is Outcome.ALLOW


@cache
def verdict(
    outcome: Outcome,
    reason: Reason,
    basis: BasisKind | None = None,
    obligations: frozenset[Obligation] = frozenset(),
) -> Verdict:
    """The one shared :class:`Verdict` for these values (the set of verdicts is small)."""
    return Verdict(outcome, reason, basis, obligations)
