"""The store interface: one contract for every backend (memory, SQLite, PostgreSQL).

A store keeps the records that the law makes the service answerable for: consents, objections,
kill-switch states, review tickets and explanations. It also keeps a *change feed*: every write
that can change a verdict appends one :class:`Change`, so that each process can keep its facts in
memory and still see, within a poll interval, what other processes or hosts changed.

All methods are synchronous and thread-safe; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kzai_guard.core.consent import Consent, Objection
from kzai_guard.core.oversight import ReviewerOverride, ReviewWork
from kzai_guard.core.review import ReviewOutcome, ReviewStatus, ReviewTicket

__all__ = [
    "Change",
    "ChangeKind",
    "ErasedData",
    "OutcomeCount",
    "RoutingState",
    "Store",
    "StoredDataBasis",
    "StoredExplanation",
    "SwitchState",
]


class ChangeKind(enum.StrEnum):
    """What a change in the feed touched."""

    CONSENT = "consent"
    OBJECTION = "objection"
    SWITCH = "switch"


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: ``seq`` grows by one per change, store-wide."""

    seq: int
    kind: ChangeKind
    subject: str | None


@dataclass(frozen=True, slots=True)
class ErasedData:
    """What :meth:`Store.erase_subject` removed for one person."""

    consents: int
    objections: int
    tickets: int
    """Review tickets whose identifier and note were removed (the tickets stay)."""
    explanations: int
    data_bases: int = 0
    """Decisions whose data-basis values were removed."""
    override_notes: int = 0
    """Reviewers' override notes about the person that were removed (the overrides stay)."""


@dataclass(frozen=True, slots=True)
class SwitchState:
    """The kill switch of one decision type."""

    policy: str
    suspended: bool
    changed_at: datetime
    changed_by: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class RoutingState:
    """Whether the decisions of one decision type are routed to humans because its outcomes
    crossed its disparity thresholds (KZ-AI 6), who set or cleared that, when, and why."""

    policy: str
    routed: bool
    changed_at: datetime
    changed_by: str
    reason: str | None


@dataclass(slots=True)
class StoredExplanation:
    """An explanation as kept for later retrieval by the person it is about. Treat it as
    immutable once made (not frozen, so that making one per decision costs less).

    ``body`` is the explanation's JSON exactly as the decision function gave it; ``digest`` is
    its SHA-256, as written in the audit record. ``subject_ref`` is the subject's pseudonym:
    retrieval compares it with the requester's.
    """

    decision_id: str
    subject_ref: str
    policy: str
    created_at: datetime
    body: bytes
    digest: str


@dataclass(slots=True)
class StoredDataBasis:
    """The data one decision rested on, as kept for the person it is about (treat it as
    immutable once made).

    ``body`` is :func:`~kzai_guard.core.data_basis.basis_json` (the reported values and a
    salt); ``digest`` its SHA-256, as written in the audit record; ``missing`` the declared
    inputs the decision function did not report.
    """

    decision_id: str
    subject_ref: str
    policy: str
    created_at: datetime
    body: bytes
    digest: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    """Decisions of one policy, and how many of them were favourable, for one group of one
    protected ground, in the day that starts at ``day`` (UTC midnight). Never names a subject."""

    policy: str
    ground: str
    group: str
    day: datetime
    decisions: int
    favourable: int


class Store(Protocol):
    """The contract every backend fulfils."""

    def secret(self, name: str, factory: Callable[[], bytes]) -> bytes:
        """The secret called ``name``, created with ``factory`` once, atomically, if missing."""
        ...

    def add_consent(self, consent: Consent) -> None:
        """Record a granted consent."""
        ...

    def withdraw_consents(self, subject: str, purpose: str, at: datetime) -> list[Consent]:
        """Withdraw every consent of ``subject`` for ``purpose`` still in force; return them.

        Atomically refuses, withdrawing none, with
        :class:`~kzai_guard.errors.WithdrawalRestricted` while any of them has a
        withdrawal restriction in force at ``at``.
        """
        ...

    def consents_of(self, subject: str) -> list[Consent]:
        """Every consent record of ``subject``, oldest first."""
        ...

    def add_objection(self, objection: Objection) -> None:
        """Record an objection."""
        ...

    def withdraw_objections(
        self, subject: str, policy: str | None, at: datetime
    ) -> list[Objection]:
        """Withdraw the objections of ``subject`` to ``policy`` (``None``: the general one)."""
        ...

    def objections_of(self, subject: str) -> list[Objection]:
        """Every objection record of ``subject``, oldest first."""
        ...

    def set_switch(self, state: SwitchState) -> None:
        """Throw or reset the kill switch of one decision type."""
        ...

    def switches(self) -> list[SwitchState]:
        """The current state of every switch that was ever set."""
        ...

    def set_routing(self, state: RoutingState) -> None:
        """Route one decision type's decisions to humans, or stop doing so (a
        :attr:`ChangeKind.SWITCH` change: the processes reload switches and routings)."""
        ...

    def routings(self) -> list[RoutingState]:
        """The current routing of every decision type whose routing was ever set."""
        ...

    def add_review(self, ticket: ReviewTicket) -> None:
        """Open a review ticket."""
        ...

    def get_review(self, review_id: str) -> ReviewTicket:
        """The ticket; :class:`~kzai_guard.errors.UnknownRecord` if there is none."""
        ...

    def complete_review(
        self,
        review_id: str,
        *,
        reviewer: str,
        outcome: ReviewOutcome,
        note: str | None,
        at: datetime,
    ) -> ReviewTicket:
        """Complete an open ticket; a completed or unknown one raises."""
        ...

    def open_reviews(self) -> list[ReviewTicket]:
        """Every open ticket, oldest first."""
        ...

    def add_explanations(self, explanations: Sequence[StoredExplanation]) -> None:
        """Keep explanations (idempotent per decision id)."""
        ...

    def get_explanation(self, decision_id: str) -> StoredExplanation | None:
        """The explanation of one decision, if kept."""
        ...

    def add_data_bases(self, bases: Sequence[StoredDataBasis]) -> None:
        """Keep the data decisions rested on (idempotent per decision id)."""
        ...

    def data_basis_of(self, decision_id: str) -> StoredDataBasis | None:
        """The data one decision rested on, if kept."""
        ...

    def changes_since(self, seq: int) -> list[Change]:
        """The changes after ``seq``, in order."""
        ...

    def latest_change(self) -> int:
        """The ``seq`` of the newest change (0 when none)."""
        ...

    def erase_subject(self, subject: str, subject_ref: str) -> ErasedData:
        """Remove a person from the store: their consents, objections and change-feed entries
        (raw identifier), their explanations and data-basis values (stored under
        ``subject_ref``), from their review tickets the identifier, the reviewer's note and the
        escalation's reason, and the notes of overrides of their decisions. A ticket keeps its
        id, decision id, policy, reason, status and times, and an override its action, reviewer
        and time, so that counts and deadlines can still be accounted for. Says how much it
        removed."""
        ...

    def erase_reviewer(self, reviewer: str) -> int:
        """Remove a reviewer's identifier from the review tickets they completed, the
        kill-switch and routing states they set, the escalations and overrides they made (the
        rows stay), and release the tickets they hold. Returns how many rows named them."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...

    def add_outcome_counts(self, counts: Sequence[OutcomeCount]) -> None:
        """Add ``counts`` to the stored ones, in one transaction (an increment per key, so that
        every process and host adds to the same counts)."""
        ...

    def outcome_counts(
        self, since: datetime, until: datetime, policy: str | None = None
    ) -> list[OutcomeCount]:
        """The counts of the days from ``since`` (inclusive) to ``until`` (exclusive), of
        ``policy`` or of every policy, ordered by policy, ground, group and day."""

    # -- the reviewer's work (claims with leases, escalations, overrides) -------------------

    def claim_review(
        self, review_id: str, *, reviewer: str, at: datetime, lease_until: datetime
    ) -> ReviewWork:
        """Give ``reviewer`` the ticket until ``lease_until``, atomically across processes.

        Raises :class:`~kzai_guard.errors.ReviewConflict` when another reviewer's lease is live
        at ``at`` or the ticket is decided, :class:`~kzai_guard.errors.UnknownRecord` when there
        is no such ticket. Of two racing claims exactly one wins.
        """
        ...

    def release_review(self, review_id: str, *, reviewer: str) -> None:
        """Give the ticket back; only its holder may (else ``ReviewConflict``)."""
        ...

    def escalate_review(
        self, review_id: str, *, reviewer: str, reason: str, at: datetime
    ) -> ReviewWork:
        """Mark an open ticket escalated and release its claim; refused (``ReviewConflict``)
        while another reviewer's lease is live or once the ticket is decided."""
        ...

    def decide_review(
        self,
        review_id: str,
        *,
        reviewer: str,
        outcome: ReviewOutcome,
        note: str | None,
        at: datetime,
    ) -> ReviewTicket:
        """Complete a ticket that ``reviewer`` holds, atomically with the check that they do."""
        ...

    def review_work(self, review_ids: Sequence[str]) -> dict[str, ReviewWork]:
        """Claims and escalations of the given tickets (tickets nobody touched are absent)."""
        ...

    def review_queue(
        self,
        *,
        status: ReviewStatus | None,
        policy: str | None,
        deadline_before: datetime | None,
        limit: int,
        offset: int,
    ) -> list[ReviewTicket]:
        """Tickets filtered by status, policy and deadline, soonest deadline first, paged."""
        ...

    def add_override(self, override: ReviewerOverride) -> None:
        """Keep a human's correction or cancellation of an automated decision."""
        ...

    def overrides_of(self, decision_id: str) -> list[ReviewerOverride]:
        """The overrides of one decision, oldest first."""
        ...
