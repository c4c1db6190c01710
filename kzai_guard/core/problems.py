"""The problem types kzai_guard answers with (RFC 9457), one stable ``type`` URI each.

The URI is ``<base><slug>``; the base defaults to :data:`DEFAULT_PROBLEM_BASE` and can be set per
guard. ``docs/problems.md`` describes every type.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AUDIT_UNAVAILABLE",
    "BAD_REQUEST",
    "CLAIM_CONFLICT",
    "CLAIM_REQUIRED",
    "CSRF_FAILED",
    "DEFAULT_PROBLEM_BASE",
    "EMOTION_CONSENT_REQUIRED",
    "EXPLANATION_INVALID",
    "EXPLANATION_MISSING",
    "FACTS_UNAVAILABLE",
    "HUMAN_REVIEW",
    "JSON_REQUIRED",
    "NOT_FOUND",
    "NO_LEGAL_BASIS",
    "OVERRIDE_FORBIDDEN",
    "PROBLEM_TYPES",
    "ProblemType",
    "REVIEWER_FORBIDDEN",
    "REVIEWER_REQUIRED",
    "REVIEW_CLOSED",
    "SUBJECT_INVALID",
    "SUBJECT_MISSING",
    "SUSPENDED",
]

DEFAULT_PROBLEM_BASE = "urn:kzai-guard:problem:"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """A kind of refusal: its slug (the end of its type URI), HTTP status and title."""

    slug: str
    status: int
    title: str


SUSPENDED = ProblemType("suspended", 503, "This decision type is suspended")
NO_LEGAL_BASIS = ProblemType(
    "no-legal-basis", 403, "No consent or legal basis for a solely automated decision"
)
EMOTION_CONSENT_REQUIRED = ProblemType(
    "emotion-consent-required", 403, "Emotion recognition needs the person's consent"
)
HUMAN_REVIEW = ProblemType("human-review", 202, "The decision was sent to a human reviewer")
EXPLANATION_MISSING = ProblemType(
    "explanation-missing", 500, "The decision was withheld: it came without an explanation"
)
EXPLANATION_INVALID = ProblemType(
    "explanation-invalid", 500, "The decision was withheld: its explanation is invalid"
)
SUBJECT_MISSING = ProblemType("subject-missing", 400, "The request does not name its subject")
SUBJECT_INVALID = ProblemType("subject-invalid", 400, "The subject identifier is not valid")
AUDIT_UNAVAILABLE = ProblemType(
    "audit-unavailable", 503, "The decision was refused: the audit trail cannot record it"
)
FACTS_UNAVAILABLE = ProblemType(
    "facts-unavailable", 503, "The decision was refused: the facts it rests on cannot be read"
)
NOT_FOUND = ProblemType("not-found", 404, "No such decision or review for this person")
BAD_REQUEST = ProblemType("bad-request", 400, "The request is not valid")
RECEIPT_PENDING = ProblemType(
    "receipt-pending", 503, "The decision is not yet under a signed checkpoint"
)
REVIEWER_REQUIRED = ProblemType("reviewer-required", 401, "Sign in to work on human reviews")
REVIEWER_FORBIDDEN = ProblemType(
    "reviewer-forbidden", 403, "The signed-in user is not a human reviewer"
)
CLAIM_CONFLICT = ProblemType("claim-conflict", 409, "Another reviewer holds this review ticket")
CLAIM_REQUIRED = ProblemType("claim-required", 409, "Claim the review ticket first")
REVIEW_CLOSED = ProblemType("review-closed", 409, "The review ticket is already decided")
OVERRIDE_FORBIDDEN = ProblemType(
    "override-forbidden", 409, "Decisions of this type cannot be overridden (high autonomy)"
)
CSRF_FAILED = ProblemType("csrf-failed", 403, "The form's CSRF token is missing or wrong")
JSON_REQUIRED = ProblemType("json-required", 415, "The request body must be JSON")

PROBLEM_TYPES: tuple[ProblemType, ...] = (
    SUSPENDED,
    NO_LEGAL_BASIS,
    EMOTION_CONSENT_REQUIRED,
    HUMAN_REVIEW,
    EXPLANATION_MISSING,
    EXPLANATION_INVALID,
    SUBJECT_MISSING,
    SUBJECT_INVALID,
    AUDIT_UNAVAILABLE,
    FACTS_UNAVAILABLE,
    NOT_FOUND,
    BAD_REQUEST,
    RECEIPT_PENDING,
    REVIEWER_REQUIRED,
    REVIEWER_FORBIDDEN,
    CLAIM_CONFLICT,
    CLAIM_REQUIRED,
    REVIEW_CLOSED,
    OVERRIDE_FORBIDDEN,
    CSRF_FAILED,
    JSON_REQUIRED,
)
"""Every problem type, for documentation and tests."""
