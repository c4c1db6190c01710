"""The figures of a compliance report, counted from audit records and review tickets.

No I/O and no plotting here: :func:`count` takes the verified records of the period, the review
tickets they name and the disparity comparisons, and returns a :class:`Figures` whose every
number can be recomputed from ``kzai-guard export --format jsonl`` output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.core.disparity import GroupDisparity
from kzai_guard.core.review import ReviewTicket

__all__ = ["DisparityRow", "Figures", "ReviewFigures", "count", "day_of"]


@dataclass(frozen=True, slots=True)
class DisparityRow:
    """One group of one ground of one policy, compared with the most favoured group."""

    policy: str
    ground: str
    disparity: GroupDisparity


@dataclass(slots=True)
class ReviewFigures:
    """Review tickets opened in the period: how their deadlines went by ``at``."""

    opened: int = 0
    completed: int = 0
    met: int = 0
    """Completed by the deadline."""
    missed: int = 0
    """Completed after the deadline, or still open past it."""
    pending: int = 0
    """Still open, the deadline not yet passed."""
    unknown: int = 0
    """Opened in the trail but not found in the store."""


@dataclass(slots=True)
class Figures:
    """Everything the report counts."""

    records: int = 0
    decisions: int = 0
    by_verdict: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Decisions by (policy, verdict, reason)."""
    by_day: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Decisions by (UTC day, verdict)."""
    withheld: int = 0
    explanations: int = 0
    """Decisions that carried an explanation (its digest is in the record)."""
    objections: int = 0
    objections_withdrawn: int = 0
    reviews: ReviewFigures = field(default_factory=ReviewFigures)
    disparity_alerts: int = 0
    suspensions: int = 0
    routings: int = 0
    """Times a policy's AI decisions were routed to humans for disparity (``routing.started``)."""
    disparities: list[DisparityRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form (embedded in the report for machines)."""
        return {
            "records": self.records,
            "decisions": self.decisions,
            "by_verdict": dict(sorted(self.by_verdict.items())),
            "by_reason": [[*key, n] for key, n in sorted(self.by_reason.items())],
            "by_day": [[*key, n] for key, n in sorted(self.by_day.items())],
            "withheld": self.withheld,
            "explanations": self.explanations,
            "objections": self.objections,
            "objections_withdrawn": self.objections_withdrawn,
            "reviews": {
                "opened": self.reviews.opened,
                "completed": self.reviews.completed,
                "met": self.reviews.met,
                "missed": self.reviews.missed,
                "pending": self.reviews.pending,
                "unknown": self.reviews.unknown,
            },
            "disparity_alerts": self.disparity_alerts,
            "suspensions": self.suspensions,
            "routings": self.routings,
        }


def day_of(time_us: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of a record time in Unix microseconds."""
    return datetime.fromtimestamp(time_us // 1_000_000, UTC).date().isoformat()


def count(
    records: Iterable[AuditRecord],
    tickets: Mapping[str, ReviewTicket],
    disparities: Iterable[DisparityRow],
    at: datetime,
) -> Figures:
    """Count ``records`` (those of the period); ``tickets`` by id; deadlines judged at ``at``."""
    figures = Figures(disparities=list(disparities))
    opened: list[str] = []
    for record in records:
        figures.records += 1
        kind = record.kind
        if kind is EventKind.DECISION:
            verdict = str(record.verdict)
            figures.decisions += 1
            figures.by_verdict[verdict] += 1
            figures.by_reason[str(record.policy), verdict, str(record.reason)] += 1
            figures.by_day[day_of(record.time), verdict] += 1
            if record.explanation_digest is not None:
                figures.explanations += 1
        elif kind is EventKind.DECISION_WITHHELD:
            figures.withheld += 1
        elif kind is EventKind.OBJECTION_RECORDED:
            figures.objections += 1
        elif kind is EventKind.OBJECTION_WITHDRAWN:
            figures.objections_withdrawn += 1
        elif kind is EventKind.REVIEW_OPENED and record.review_id is not None:
            opened.append(record.review_id)
        elif kind is EventKind.DISPARITY_DETECTED:
            figures.disparity_alerts += 1
        elif kind is EventKind.SWITCH_SUSPENDED:
            figures.suspensions += 1
        elif kind is EventKind.ROUTING_STARTED:
            figures.routings += 1
    for review_id in opened:
        _judge_ticket(figures.reviews, tickets.get(review_id), at)
    return figures


def _judge_ticket(reviews: ReviewFigures, ticket: ReviewTicket | None, at: datetime) -> None:
    reviews.opened += 1
    if ticket is None:
        reviews.unknown += 1
    elif ticket.completed_at is not None:
        reviews.completed += 1
        if ticket.completed_at <= ticket.deadline:
            reviews.met += 1
        else:
            reviews.missed += 1
    elif at > ticket.deadline:
        reviews.missed += 1
    else:
        reviews.pending += 1
