"""Every exception kzai_guard raises, in one tree.

::

    KzaiGuardError
    ├── ConfigurationError            a policy, profile or guard setting is wrong (start-up)
    │   ├── ProhibitedPractice        a policy declares a capability the law prohibits
    │   └── OverrideForbidden         an override of a decision whose policy has high autonomy
    ├── DecisionRefused               a decision was not made by the AI (run time)
    │   ├── DecisionBlocked           blocked: no legal basis, suspended, invalid subject, ...
    │   ├── HumanReviewRequired       routed to a human; carries the review ticket
    │   └── ExplanationMissing        a significant decision came with no (valid) explanation
    ├── InvalidDataBasis              a decision reported inputs its policy does not declare
    ├── WithdrawalRestricted          a law or unfulfilled obligation forbids a consent withdrawal
    ├── AuditUnavailable              the audit trail cannot take a record (fail closed)
    ├── StoreError                    the store failed or holds inconsistent data
    │   ├── UnknownRecord             a consent, review ticket or explanation does not exist
    │   └── ReviewConflict            a ticket is held by another reviewer, not claimed, or closed
    ├── AuditLogError                 the signed audit log is damaged or cannot be opened
    ├── ErasureIncomplete             erased data could not be shown to be gone from every file
    └── WebhookVerificationError      a webhook's signature, id or timestamp does not check out

Over HTTP the middleware renders every :class:`DecisionRefused` and :class:`AuditUnavailable`
as an RFC 9457 problem; outside HTTP they reach the caller as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kzai_guard.core.consent import WithdrawalRestriction
    from kzai_guard.core.oversight import ConflictReason
    from kzai_guard.core.problems import ProblemType
    from kzai_guard.core.review import ReviewTicket

__all__ = [
    "AuditLogError",
    "AuditUnavailable",
    "ConfigurationError",
    "DecisionBlocked",
    "DecisionRefused",
    "ErasureIncomplete",
    "ExplanationMissing",
    "HumanReviewRequired",
    "InvalidDataBasis",
    "KzaiGuardError",
    "OverrideForbidden",
    "ProhibitedPractice",
    "ReviewConflict",
    "StoreError",
    "UnknownRecord",
    "WebhookVerificationError",
    "WithdrawalRestricted",
]


class KzaiGuardError(Exception):
    """Base class of every error kzai_guard raises."""


class ConfigurationError(KzaiGuardError, ValueError):
    """Raised at start-up when a policy, profile or guard setting is wrong.

    The message names the policy, the field and the fix.
    """


class ProhibitedPractice(ConfigurationError):
    """Raised at start-up when a policy declares a capability that KZ-AI 17(3) prohibits."""


class OverrideForbidden(ConfigurationError):
    """Raised by ``guard.override`` for a policy that declares high autonomy: by the law's
    definition its decisions cannot be corrected or cancelled (KZ-AI 17(2)). Nothing is
    recorded."""


class DecisionRefused(KzaiGuardError):
    """A decision that the AI was not allowed to make, or whose result was withheld.

    ``problem`` says how it is rendered over HTTP; ``decision_id`` names the decision in the
    audit trail; ``detail`` is a sentence a person can act on.
    """

    def __init__(
        self, problem: ProblemType, detail: str, *, decision_id: str | None = None
    ) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail
        self.decision_id = decision_id


class DecisionBlocked(DecisionRefused):
    """Raised when a decision is blocked before the decision function runs."""


class HumanReviewRequired(DecisionRefused):
    """Raised when a decision is routed to a human; ``ticket`` is the open review ticket."""

    def __init__(
        self, problem: ProblemType, detail: str, *, decision_id: str | None, ticket: ReviewTicket
    ) -> None:
        super().__init__(problem, detail, decision_id=decision_id)
        self.ticket = ticket


class ExplanationMissing(DecisionRefused):
    """Raised when a significant decision returned without a valid explanation (enforce mode)."""


class InvalidDataBasis(KzaiGuardError, ValueError):
    """Raised by ``kg.data_basis`` inside a decision function: it reported a value for an input
    its policy does not declare in ``data_basis``, a value that is not a JSON scalar, or
    reported at all for a policy that declares no data basis."""


class WithdrawalRestricted(KzaiGuardError):
    """Raised by ``guard.consents.withdraw`` while a law or an unfulfilled obligation forbids it.

    Nothing was withdrawn. ``restrictions`` are those in force (tell the person their
    ``ground``); the withdrawal is possible from the latest ``until`` on.
    """

    def __init__(self, restrictions: tuple[WithdrawalRestriction, ...]) -> None:
        grounds = "; ".join(r.ground for r in restrictions)
        until = max(r.until for r in restrictions)
        super().__init__(f"the consent cannot be withdrawn until {until.isoformat()}: {grounds}")
        self.restrictions = restrictions
        self.until = until


class AuditUnavailable(KzaiGuardError):
    """Raised when the audit trail cannot accept a record; significant decisions fail closed."""


class StoreError(KzaiGuardError):
    """Raised when the store fails or holds data it cannot read."""


class UnknownRecord(StoreError, LookupError):
    """Raised when a consent, review ticket or explanation that was asked for does not exist."""


class AuditLogError(KzaiGuardError):
    """Raised when the signed audit log is damaged beyond repair or cannot be opened."""


class ReviewConflict(StoreError):
    """Raised when a reviewer's action does not fit who holds the ticket or where it stands.

    ``reason`` says which: another reviewer's live claim, a claim this reviewer does not hold, or
    a ticket already decided. Nothing was changed.
    """

    def __init__(self, reason: ConflictReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ErasureIncomplete(KzaiGuardError):
    """Raised when erased data cannot be shown to be gone from every file: a reader held a
    SQLite WAL too long for it to be truncated, or the bytes were still found. What was
    deleted stays deleted; running the erasure again finishes it."""


class WebhookVerificationError(KzaiGuardError, ValueError):
    """Raised by :func:`kzai_guard.verify_webhook` when a notification's headers are missing,
    its timestamp is outside the tolerance, or no signature matches its body: do not act on
    it."""
