"""The words the law uses, as enumerations (see ``LAW.md``, "Vocabulary the library models")."""

from __future__ import annotations

import enum

__all__ = [
    "Autonomy",
    "BasisKind",
    "Capability",
    "DisparityAction",
    "Domain",
    "Fallback",
    "Language",
    "Mode",
    "ProtectedGround",
    "RiskClass",
    "Significance",
    "VulnerabilityGround",
]


class Significance(enum.StrEnum):
    """How much a decision affects the person it is about."""

    NONE = "none"
    """Assistive only: no effect on the person's rights or interests."""
    AFFECTS_INTERESTS = "affects-interests"
    """Affects rights, freedoms or legitimate interests: the explanation duty applies (KZ-AI 16)."""
    SIMILARLY_SIGNIFICANT = "similarly-significant"
    """Significantly affects the person in a way similar to a legal effect (GDPR 22(1))."""
    LEGAL_EFFECT = "legal-effect"
    """Makes rights or legitimate interests arise, change or end (KZ-AI 21(4))."""

    @property
    def is_significant(self) -> bool:
        """True for the two levels that rows 1 and 3 of the law apply to."""
        return self in (Significance.SIMILARLY_SIGNIFICANT, Significance.LEGAL_EFFECT)


class Autonomy(enum.StrEnum):
    """KZ-AI 17(2): how far a human stays in control of the system's results."""

    LOW = "low"
    """A human always takes the final decision."""
    MEDIUM = "medium"
    """A human can correct or cancel the result."""
    HIGH = "high"
    """Correction or cancellation is impossible: solely automated."""


class RiskClass(enum.StrEnum):
    """KZ-AI 17(1): the system's risk class."""

    MINIMAL = "minimal"
    MEDIUM = "medium"
    HIGH = "high"


class Domain(enum.StrEnum):
    """Where a decision is made; helps choose its significance."""

    CREDIT = "credit"
    INSURANCE = "insurance"
    EMPLOYMENT = "employment"
    EDUCATION = "education"
    PUBLIC_BENEFITS = "public-benefits"
    ESSENTIAL_SERVICES = "essential-services"
    HEALTHCARE = "healthcare"
    ACCOUNT_SUSPENSION = "account-suspension"
    PERSONALISED_PRICING = "personalised-pricing"
    TARGETED_OFFERS = "targeted-offers"
    LAW_ENFORCEMENT = "law-enforcement"
    MIGRATION = "migration"
    JUSTICE = "justice"
    OTHER = "other"


class BasisKind(enum.StrEnum):
    """The legal basis a solely automated significant decision relies on."""

    CONSENT = "consent"
    STATUTORY = "statutory"
    CONTRACT = "contract"
    """Contract necessity: accepted by the ``eu`` profile only (GDPR 22(2)(a))."""
    HUMAN = "human"
    """Not a basis for automation: a human took the decision."""


class VulnerabilityGround(enum.StrEnum):
    """Why a person may be vulnerable (KZ-AI 17(3)(2))."""

    MINOR = "minor"
    ELDERLY = "elderly"
    DISABILITY = "disability"
    SOCIAL_STATUS = "social-status"
    FINANCIAL_DISTRESS = "financial-distress"
    OTHER = "other"


class Capability(enum.StrEnum):
    """What a decision system does, as far as the prohibited-practice list cares."""

    SUBLIMINAL_MANIPULATION = "subliminal-manipulation"
    VULNERABILITY_EXPLOITATION = "vulnerability-exploitation"
    SOCIAL_SCORING = "social-scoring"
    UNLAWFUL_PERSONAL_DATA_PROCESSING = "unlawful-personal-data-processing"
    BIOMETRIC_CATEGORISATION = "biometric-categorisation"
    EMOTION_RECOGNITION = "emotion-recognition"
    PROHIBITED_OUTPUT = "prohibited-output"
    SYNTHETIC_CONTENT = "synthetic-content"
    PROFILING = "profiling"


class Mode(enum.StrEnum):
    """Whether a policy's verdicts are carried out."""

    ENFORCE = "enforce"
    MONITOR = "monitor"
    """Report-only: verdicts are computed and recorded, nothing is blocked or routed."""


class Fallback(enum.StrEnum):
    """What happens to a significant decision that has no legal basis."""

    BLOCK = "block"
    HUMAN = "human"
    """Route it to a human reviewer instead of refusing it."""


class Language(enum.StrEnum):
    """Languages an explanation summary can be given in."""

    KK = "kk"
    RU = "ru"
    EN = "en"


class ProtectedGround(enum.StrEnum):
    """A ground on which the law forbids discrimination (KZ-AI 6); what disparity monitoring
    counts outcomes by. The app puts a subject into coarse groups per ground it monitors."""

    ORIGIN = "origin"
    SOCIAL_STATUS = "social-status"
    PROPERTY_STATUS = "property-status"
    POSITION = "position"
    SEX = "sex"
    RACE = "race"
    NATIONALITY = "nationality"
    LANGUAGE = "language"
    RELIGION = "religion"
    BELIEFS = "beliefs"
    RESIDENCE = "residence"
    AGE_BAND = "age-band"
    DISABILITY = "disability"


class DisparityAction(enum.StrEnum):
    """What the guard does when a policy's outcomes cross its disparity thresholds."""

    ALERT = "alert"
    """An audit record and a metric only."""
    ROUTE = "route"
    """Also route the policy's decisions the AI would make to humans, until an officer clears
    it (``Switches.clear_route``): the person is told why, and so is the record."""
    SUSPEND = "suspend"
    """Also throw the policy's kill switch: its decisions stop until an operator resumes it."""
