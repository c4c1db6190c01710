"""kzai_guard: run-time enforcement of Kazakhstan's AI law for Python services.

A :class:`Guard` holds :class:`DecisionPolicy` objects; ``guard.install(app)`` adds a pure ASGI
middleware and ``@guard.decision(name)`` makes every call of a function a decision that is
allowed, blocked or routed to a human according to the law, explained, disclosed and recorded
in a signed audit trail.
"""

from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.audit.sink import AuditSink, MemorySink, NullSink, RecordDraft
from kzai_guard.context import (
    DecisionContext,
    data_basis,
    decision_context,
    explain,
    mark_outcome,
)
from kzai_guard.core.calendar import WorkingCalendar
from kzai_guard.core.consent import CollectionMethod, Consent, Objection, WithdrawalRestriction
from kzai_guard.core.data_basis import BasisInput, Redaction, Source
from kzai_guard.core.deadlines import DeadlineState
from kzai_guard.core.explanation import Direction, Explanation, Factor
from kzai_guard.core.facts import Facts
from kzai_guard.core.monitoring import DisparityMonitoring
from kzai_guard.core.oversight import OverrideAction, ReviewerOverride, ReviewWork
from kzai_guard.core.policy import DecisionPolicy, ModelInfo, StatutoryBasis
from kzai_guard.core.profiles import Profile
from kzai_guard.core.review import Reviewer, ReviewOutcome, ReviewStatus, ReviewTicket
from kzai_guard.core.rules import evaluate
from kzai_guard.core.verdict import Obligation, Outcome, Reason, Verdict
from kzai_guard.core.vocabulary import (
    Autonomy,
    BasisKind,
    Capability,
    DisparityAction,
    Domain,
    Fallback,
    Language,
    Mode,
    ProtectedGround,
    RiskClass,
    Significance,
    VulnerabilityGround,
)
from kzai_guard.errors import (
    AuditLogError,
    AuditUnavailable,
    ConfigurationError,
    DecisionBlocked,
    DecisionRefused,
    ErasureIncomplete,
    ExplanationMissing,
    HumanReviewRequired,
    InvalidDataBasis,
    KzaiGuardError,
    OverrideForbidden,
    ProhibitedPractice,
    ReviewConflict,
    StoreError,
    UnknownRecord,
    WebhookVerificationError,
    WithdrawalRestricted,
)
from kzai_guard.guard import Guard
from kzai_guard.middleware import GuardMiddleware
from kzai_guard.reviewers import reviewer_from_auth
from kzai_guard.subjects import UnusableSubject, from_header, from_path_param, from_user
from kzai_guard.webhook_signature import verify_webhook

__version__ = "0.1.0"

__all__ = [
    "AuditLogError",
    "AuditRecord",
    "AuditSink",
    "AuditUnavailable",
    "Autonomy",
    "BasisInput",
    "BasisKind",
    "Capability",
    "CollectionMethod",
    "ConfigurationError",
    "Consent",
    "DecisionBlocked",
    "DecisionContext",
    "DecisionPolicy",
    "DeadlineState",
    "DecisionRefused",
    "Direction",
    "DisparityAction",
    "DisparityMonitoring",
    "Domain",
    "EventKind",
    "Explanation",
    "ErasureIncomplete",
    "ExplanationMissing",
    "Facts",
    "Factor",
    "Fallback",
    "Guard",
    "GuardMiddleware",
    "HumanReviewRequired",
    "InvalidDataBasis",
    "KzaiGuardError",
    "Language",
    "MemorySink",
    "Mode",
    "ModelInfo",
    "NullSink",
    "Objection",
    "Obligation",
    "Outcome",
    "Profile",
    "ProhibitedPractice",
    "ProtectedGround",
    "Reason",
    "RecordDraft",
    "Redaction",
    "ReviewOutcome",
    "ReviewStatus",
    "ReviewTicket",
    "ReviewWork",
    "ReviewConflict",
    "OverrideForbidden",
    "ReviewerOverride",
    "OverrideAction",
    "Reviewer",
    "RiskClass",
    "Significance",
    "Source",
    "StatutoryBasis",
    "StoreError",
    "UnknownRecord",
    "UnusableSubject",
    "Verdict",
    "VulnerabilityGround",
    "WebhookVerificationError",
    "WithdrawalRestricted",
    "WithdrawalRestriction",
    "WorkingCalendar",
    "__version__",
    "data_basis",
    "decision_context",
    "evaluate",
    "explain",
    "from_header",
    "from_path_param",
    "from_user",
    "mark_outcome",
    "reviewer_from_auth",
    "verify_webhook",
]
