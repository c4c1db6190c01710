"""Builds audit records and hands them to the sink: the one place records are made."""

from __future__ import annotations

import time
from concurrent.futures import Future

from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.audit.sink import AuditSink
from kzai_guard.core.pseudonym import Pseudonymizer
from kzai_guard.ids import new_id

__all__ = ["REVIEWER_DOMAIN", "Auditor"]


REVIEWER_DOMAIN = "kzai-guard reviewer\n"
"""What a reviewer's identifier is prefixed with before it is pseudonymised, so that a
reviewer and a subject with the same identifier get unrelated pseudonyms."""


class Auditor:
    """Turns guard events into :class:`AuditRecord` objects; subjects and reviewers become
    keyed pseudonyms here (:meth:`reviewer_ref`)."""

    __slots__ = ("profile", "pseudonym", "sink")

    def __init__(self, sink: AuditSink, pseudonym: Pseudonymizer, profile: str) -> None:
        self.sink = sink
        self.pseudonym = pseudonym
        self.profile = profile

    def reviewer_ref(self, reviewer: str) -> str:
        """The keyed pseudonym a reviewer's identifier is recorded as: without the pseudonym
        key a list of staff logins confirms nothing, and a record without a subject is sealed
        under the reviewer's own key, erasable as a subject's is."""
        return self.pseudonym(REVIEWER_DOMAIN + reviewer)

    def event(
        self,
        kind: EventKind,
        *,
        subject: str | None = None,
        policy: str | None = None,
        purpose: str | None = None,
        reviewer: str | None = None,
        review_id: str | None = None,
        detail: str | None = None,
        record_id: str | None = None,
        subject_ref: str | None = None,
    ) -> Future[None] | None:
        """Record a non-decision event (consent, objection, switch, review).

        ``subject`` is the raw identifier (pseudonymised here); ``subject_ref`` an already
        pseudonymised one, for events known only by the pseudonym."""
        return self.sink.write(
            AuditRecord(
                id=record_id or new_id(),
                time=time.time_ns() // 1000,
                kind=kind,
                policy=policy,
                subject=subject_ref if subject is None else self.pseudonym(subject),
                purpose=purpose,
                profile=self.profile,
                reviewer=None if reviewer is None else self.reviewer_ref(reviewer),
                review_id=review_id,
                detail=detail,
            )
        )

    def write(self, record: AuditRecord) -> Future[None] | None:
        """Hand a fully built record to the sink."""
        return self.sink.write(record)
