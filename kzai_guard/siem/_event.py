"""The canonical SIEM event and the tables every encoder shares.

One :class:`SiemEvent` is one verified audit log entry: the record, its sequence number in the
log and the hash of its log line. Every encoder renders the same event; the level, outcome and
title come from :func:`classify`, so that all formats agree on what an event means.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from kzai_guard.audit.record import AuditRecord, EventKind

__all__ = ["Classification", "Level", "Outcome", "SiemEvent", "classify", "classify_kind"]


class Level(enum.IntEnum):
    """How much attention an event deserves; each format maps it onto its own scale.

    ============  ===  ======  ====  ========  =====
    Level         CEF  syslog  LEEF  OCSF      OTel
    ============  ===  ======  ====  ========  =====
    ``INFO``      3    6 info  3     1 Info    9
    ``NOTICE``    5    5 note  5     2 Low     10
    ``WARNING``   7    4 warn  7     3 Medium  13
    ``HIGH``      9    3 err   9     4 High    17
    ============  ===  ======  ====  ========  =====
    """

    INFO = 1
    NOTICE = 2
    WARNING = 3
    HIGH = 4


class Outcome(enum.StrEnum):
    """Whether the action an event describes went through."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Classification:
    """What an event means to a SIEM: its level, outcome and a fixed human title."""

    level: Level
    outcome: Outcome
    title: str


class _LogEntry(Protocol):
    @property
    def seq(self) -> int: ...

    @property
    def record(self) -> AuditRecord: ...

    @property
    def line_hash(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SiemEvent:
    """One verified audit log entry, ready to encode.

    ``uid`` (``"<record id>:<seq>"``) is stable across re-sends: a receiver that keeps the ids
    it has seen removes the duplicates at-least-once delivery can produce. ``verified`` is
    false when the entry was read without public keys (``--unverified``): only its hash chain
    was checked, which anyone able to write the log can redo; every format then says so.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> SiemEvent(AuditRecord(id="r1", time=0, kind=EventKind.DECISION), 7, "ab").uid
    'r1:7'
    """

    record: AuditRecord
    seq: int
    line_hash: str
    verified: bool = True

    @property
    def uid(self) -> str:
        """The stable de-duplication id: record id and sequence number."""
        return f"{self.record.id}:{self.seq}"

    @classmethod
    def from_entry(cls, entry: _LogEntry, *, verified: bool = True) -> SiemEvent:
        """The event for one entry of :func:`kzai_guard.audit.reader.read_verified`."""
        return cls(entry.record, entry.seq, entry.line_hash, verified)


_VERDICT_LEVEL: dict[str, Level] = {
    "allow": Level.INFO,
    "route": Level.NOTICE,
    "block": Level.WARNING,
}
_VERDICT_OUTCOME: dict[str, Outcome] = {
    "allow": Outcome.SUCCESS,
    "route": Outcome.UNKNOWN,
    "block": Outcome.FAILURE,
}
_DECISION_TITLE: dict[str | None, str] = {
    "allow": "AI decision allowed",
    "block": "AI decision blocked",
    "route": "AI decision routed to human review",
}
_KIND_TABLE: dict[EventKind, Classification] = {
    EventKind.DECISION_WITHHELD: Classification(
        Level.HIGH, Outcome.FAILURE, "AI decision result withheld"
    ),
    EventKind.DECISION_FAILED: Classification(
        Level.WARNING, Outcome.FAILURE, "AI decision function failed"
    ),
    EventKind.REVIEW_OPENED: Classification(Level.NOTICE, Outcome.SUCCESS, "Human review opened"),
    EventKind.REVIEW_CLAIMED: Classification(Level.INFO, Outcome.SUCCESS, "Human review claimed"),
    EventKind.REVIEW_RELEASED: Classification(Level.INFO, Outcome.SUCCESS, "Human review released"),
    EventKind.REVIEW_ESCALATED: Classification(
        Level.NOTICE, Outcome.SUCCESS, "Human review escalated"
    ),
    EventKind.REVIEW_CASE_VIEWED: Classification(
        Level.INFO, Outcome.SUCCESS, "Human review case viewed"
    ),
    EventKind.REVIEW_DUE_SOON: Classification(
        Level.NOTICE, Outcome.UNKNOWN, "Human review deadline near"
    ),
    EventKind.REVIEW_OVERDUE: Classification(
        Level.WARNING, Outcome.FAILURE, "Human review deadline passed unanswered"
    ),
    EventKind.DECISION_OVERRIDDEN: Classification(
        Level.WARNING, Outcome.SUCCESS, "AI decision overridden by a human"
    ),
    EventKind.CONSENT_GRANTED: Classification(Level.INFO, Outcome.SUCCESS, "Consent granted"),
    EventKind.CONSENT_WITHDRAWN: Classification(Level.INFO, Outcome.SUCCESS, "Consent withdrawn"),
    EventKind.CONSENT_WITHDRAWAL_REFUSED: Classification(
        Level.NOTICE, Outcome.FAILURE, "Consent withdrawal refused: restricted by law or obligation"
    ),
    EventKind.OBJECTION_RECORDED: Classification(
        Level.NOTICE, Outcome.SUCCESS, "Objection to automated decision recorded"
    ),
    EventKind.OBJECTION_WITHDRAWN: Classification(
        Level.INFO, Outcome.SUCCESS, "Objection withdrawn"
    ),
    EventKind.SWITCH_SUSPENDED: Classification(
        Level.WARNING, Outcome.SUCCESS, "Decision type suspended by the kill switch"
    ),
    EventKind.SWITCH_RESUMED: Classification(
        Level.NOTICE, Outcome.SUCCESS, "Decision type resumed"
    ),
    EventKind.ROUTING_STARTED: Classification(
        Level.WARNING, Outcome.SUCCESS, "AI decisions routed to humans for disparity"
    ),
    EventKind.ROUTING_CLEARED: Classification(
        Level.NOTICE, Outcome.SUCCESS, "Routing of AI decisions to humans cleared"
    ),
    EventKind.DISPARITY_DETECTED: Classification(
        Level.HIGH, Outcome.FAILURE, "Disparity in AI decision outcomes detected"
    ),
}


def _build_table() -> dict[tuple[EventKind, str | None], Classification]:
    table: dict[tuple[EventKind, str | None], Classification] = {}
    for kind in EventKind:
        for verdict in (None, "allow", "block", "route"):
            table[kind, verdict] = _classify_slow(kind, verdict)
    return table


def _classify_slow(kind: EventKind, verdict: str | None) -> Classification:
    fixed = _KIND_TABLE.get(kind)
    if fixed is not None:
        return fixed
    level = _VERDICT_LEVEL.get(verdict or "", Level.NOTICE)
    outcome = _VERDICT_OUTCOME.get(verdict or "", Outcome.UNKNOWN)
    if kind is EventKind.REVIEW_COMPLETED:
        return Classification(level, outcome, "Human review completed")
    return Classification(level, outcome, _DECISION_TITLE.get(verdict, "AI decision evaluated"))


_TABLE = _build_table()


def classify(record: AuditRecord) -> Classification:
    """The level, outcome and title of a record.

    Decisions and completed reviews follow their verdict: ``allow`` is ``INFO``/success,
    ``route`` is ``NOTICE``/unknown, ``block`` is ``WARNING``/failure, anything else
    ``NOTICE``/unknown. Other kinds have a fixed classification (a withheld decision is ``HIGH``
    and a failure; a kill-switch suspension and a human override are ``WARNING``).
    Titles are fixed strings, never record data, so they are safe in every header.
    """
    found = _TABLE.get((record.kind, record.verdict))
    if found is None:
        return _classify_slow(record.kind, record.verdict)
    return found


def classify_kind(kind: EventKind, verdict: str | None) -> Classification:
    """:func:`classify` for a kind and verdict without a record."""
    found = _TABLE.get((kind, verdict))
    return _classify_slow(kind, verdict) if found is None else found
