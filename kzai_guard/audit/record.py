"""The audit record: one event the guard hands to the audit trail.

Every decision (allowed, blocked, routed, reviewed, overridden), consent change, objection and
kill-switch change becomes one :class:`AuditRecord`. Its fields are strings, integers or ``None``
only, so that its canonical JSON form (RFC 8785) is exactly what a fast sorted-key encoder writes.
Subjects and reviewers appear only as keyed pseudonyms (:mod:`kzai_guard.core.pseudonym`,
:meth:`kzai_guard.auditor.Auditor.reviewer_ref`), never raw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["AuditRecord", "EventKind"]


class EventKind(enum.StrEnum):
    """What an audit record is about."""

    DECISION = "decision"
    """The guard evaluated a decision (any verdict: allow, block, route)."""
    DECISION_WITHHELD = "decision.withheld"
    """A decision ran but its result was withheld (explanation missing, audit unavailable)."""
    DECISION_FAILED = "decision.failed"
    """The verdict let the decision function run and it raised: ``detail`` names the
    exception's type (never its message); the exception reached the caller unchanged."""
    REVIEW_OPENED = "review.opened"
    """A decision was routed to a human and a review ticket opened."""
    REVIEW_COMPLETED = "review.completed"
    """A human reviewer completed a review ticket."""
    REVIEW_CLAIMED = "review.claimed"
    """A reviewer took a ticket (a claim with a lease: nobody else may take it meanwhile)."""
    REVIEW_RELEASED = "review.released"
    """A reviewer gave a claimed ticket back to the queue."""
    REVIEW_ESCALATED = "review.escalated"
    """A reviewer passed a ticket up (to a senior or specialist), releasing it."""
    REVIEW_CASE_VIEWED = "review.case_viewed"
    """A reviewer opened a ticket's case (``detail`` says whether the subject was shown)."""
    REVIEW_DUE_SOON = "review.due_soon"
    """An open ticket's deadline is near (``detail``: the deadline); recorded once per ticket."""
    REVIEW_OVERDUE = "review.overdue"
    """An open ticket's deadline passed unanswered (``detail``: the deadline); recorded once
    per ticket."""
    DECISION_OVERRIDDEN = "decision.overridden"
    """A human corrected or cancelled an automated decision (medium autonomy)."""
    CONSENT_GRANTED = "consent.granted"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    CONSENT_WITHDRAWAL_REFUSED = "consent.withdrawal_refused"
    """A withdrawal was refused: a law or an unfulfilled obligation forbids it (KZ-PD 8)."""
    OBJECTION_RECORDED = "objection.recorded"
    OBJECTION_WITHDRAWN = "objection.withdrawn"
    SWITCH_SUSPENDED = "switch.suspended"
    """The kill switch of a decision type was thrown: the decision type is suspended."""
    SWITCH_RESUMED = "switch.resumed"
    ROUTING_STARTED = "routing.started"
    """A decision type's AI decisions are routed to humans for disparity (KZ-AI 6); ``detail``
    says why (the monitor's figures), ``reviewer`` who set it."""
    ROUTING_CLEARED = "routing.cleared"
    """An officer cleared a decision type's routing for disparity: the AI decides again."""
    DISPARITY_DETECTED = "disparity.detected"
    """A policy's outcomes for a group crossed its disparity thresholds (KZ-AI 6); ``detail``
    names the ground, the group, the reference group and the figures."""


@dataclass(slots=True)
class AuditRecord:
    """One event for the audit trail. Treat it as immutable once handed to a sink.

    ``time`` is the Unix time in microseconds; ``latency_us`` the guard's wall time for the
    decision, model included. Unused fields stay ``None`` and are left out of :meth:`as_dict`.
    """

    id: str
    time: int
    kind: EventKind
    policy: str | None = None
    policy_digest: str | None = None
    subject: str | None = None
    purpose: str | None = None
    profile: str | None = None
    mode: str | None = None
    significance: str | None = None
    autonomy: str | None = None
    basis: str | None = None
    verdict: str | None = None
    reason: str | None = None
    reviewer: str | None = None
    review_id: str | None = None
    explanation_digest: str | None = None
    model: str | None = None
    trace_id: str | None = None
    latency_us: int | None = None
    detail: str | None = None
    data_basis_digest: str | None = None
    """SHA-256 of the data the decision rested on, as kept for the person (salted: see
    :mod:`kzai_guard.core.data_basis`)."""

    def as_dict(self) -> dict[str, Any]:
        """The record as a flat dict of str/int values, ``None`` fields left out."""
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, enum.Enum) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """Rebuild a record from :meth:`as_dict` output; unknown keys are a ``ValueError``."""
        unknown = set(data) - set(_FIELD_NAMES)
        if unknown:
            raise ValueError(f"unknown audit record fields: {sorted(unknown)}")
        values = dict(data)
        values["kind"] = EventKind(values["kind"])
        return cls(**values)


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(AuditRecord))
