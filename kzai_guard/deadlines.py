"""Deadlines that are kept: tickets due soon or overdue are found, recorded and notified.

``guard.deadlines`` looks at the open tickets by the guard's clock and working calendar
(:mod:`kzai_guard.core.deadlines`). Each ticket found in a state for the first time becomes, in
the store, a *finding* and (with a webhook configured) its notification in the outbox, both in
one transaction and at most once per ticket and state however many processes or hosts look;
then one audit record (``review.due_soon`` / ``review.overdue``, its id the finding's), one
OpenTelemetry count, and the webhook delivery (:mod:`kzai_guard.webhooks`).

The service looks every ``deadline_check_seconds`` on a background thread, off the request
path; ``kzai-guard reviews overdue`` looks once from the command line.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

import orjson

from kzai_guard.audit.record import EventKind
from kzai_guard.core.deadlines import DeadlineState, deadline_state, due_soon_before
from kzai_guard.core.review import ReviewStatus, ReviewTicket
from kzai_guard.errors import ConfigurationError
from kzai_guard.forking import remake_after_fork
from kzai_guard.ids import new_id
from kzai_guard.stores.deadline_findings import DeadlineFinding, DeadlineStore
from kzai_guard.webhooks import WebhookSender

if TYPE_CHECKING:
    from kzai_guard.guard import Guard

__all__ = ["AUDIT_RETRY_AFTER", "Deadlines", "DueTicket", "notification_body"]

AUDIT_RETRY_AFTER = timedelta(minutes=2)
"""A finding whose audit record was not noted written this long after an attempt (the process
died in between) is recorded again, under the same record id."""
_AUDIT_WAIT_S = 30.0
_PAGE = 500
_ONE_TICK = timedelta(microseconds=1)
_KIND = {
    DeadlineState.DUE_SOON: EventKind.REVIEW_DUE_SOON,
    DeadlineState.OVERDUE: EventKind.REVIEW_OVERDUE,
}
_log = logging.getLogger("kzai_guard")


@dataclass(frozen=True, slots=True)
class DueTicket:
    """An open ticket and its deadline state."""

    ticket: ReviewTicket
    state: DeadlineState


class Deadlines:
    """Finds, records and notifies tickets due soon or overdue, for one guard."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        settings = guard.settings
        self._warning_days = settings.deadline_warning_days
        self._interval = settings.deadline_check_seconds
        self.sender: WebhookSender | None = None
        """The outbox's sender, when a webhook is configured."""
        if settings.deadline_webhook_url is not None and settings.deadline_webhook_secret:
            self.sender = WebhookSender(
                self._findings_store(),
                settings.deadline_webhook_url,
                settings.deadline_webhook_secret.get_secret_value(),
                guard.now,
            )
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        remake_after_fork(self)

    def due(self, at: datetime | None = None) -> list[DueTicket]:
        """The open tickets due soon or overdue at ``at`` (default: now), soonest deadline
        first. Reads only."""
        when = self._guard.now() if at is None else at
        calendar = self._guard.calendar
        # only tickets whose deadline is near or past: a page at a time, soonest first
        before = due_soon_before(when, self._warning_days, calendar) + _ONE_TICK
        found = []
        offset = 0
        while True:
            page = self._guard.store.review_queue(
                status=ReviewStatus.OPEN,
                policy=None,
                deadline_before=before,
                limit=_PAGE,
                offset=offset,
            )
            for ticket in page:
                state = deadline_state(ticket, when, self._warning_days, calendar)
                if state is not None:
                    found.append(DueTicket(ticket, state))
            if len(page) < _PAGE:
                return found
            offset += _PAGE

    def sweep(self, at: datetime | None = None) -> list[DeadlineFinding]:
        """Record what is newly due soon or overdue at ``at`` (default: now); returns the
        findings this call made (those another process made first are not among them).

        Also writes the audit records of earlier findings whose process died before writing
        them (see :data:`AUDIT_RETRY_AFTER`). Does not send webhooks: :meth:`deliver` does.
        """
        store = self._findings_store()
        when = self._guard.now() if at is None else at
        made = []
        for due in self.due(when):
            ticket = due.ticket
            finding = DeadlineFinding(
                id=new_id(),
                review_id=ticket.id,
                state=due.state,
                policy=ticket.policy,
                deadline=ticket.deadline,
                found_at=when,
            )
            message = None if self.sender is None else notification_body(finding, ticket)
            if store.record_deadline_finding(finding, message):
                made.append(finding)
                self._guard.telemetry.deadline_finding(finding.policy, finding.state.value)
                self._audit(store, finding, ticket.subject)
        for stale in store.unaudited_deadline_findings(when - AUDIT_RETRY_AFTER):
            if store.claim_deadline_audit(
                stale.id, at=when, attempted_before=when - AUDIT_RETRY_AFTER
            ):
                self._audit(store, stale, self._guard.store.get_review(stale.review_id).subject)
        return made

    def deliver(self) -> int:
        """Send the webhook notifications that are due; returns how many were acknowledged
        (0 without a webhook)."""
        return 0 if self.sender is None else self.sender.deliver_due()

    # -- the service's background task ------------------------------------------------------

    def start(self) -> None:
        """Look every ``deadline_check_seconds`` on a daemon thread (idempotent; nothing when
        the setting is ``None``). The first look comes one interval after the start."""
        if not self._interval or self._watcher is not None:
            return
        if not hasattr(self._guard.store, "record_deadline_finding"):
            _log.warning(
                "kzai_guard: the store %s keeps no deadline findings: tickets due soon or "
                "overdue are not looked for; use the SQL store or set deadline_check_seconds "
                "to 0",
                type(self._guard.store).__name__,
            )
            return
        self._watcher = threading.Thread(
            target=self._watch, args=(self._interval,), name="kzai-guard-deadlines", daemon=True
        )
        self._watcher.start()

    def stop(self) -> None:
        """Stop the background task; a look under way finishes first."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
            self._watcher = None

    def after_fork_in_child(self) -> None:
        """In a forked child: a task of its own if the parent had one."""
        self._stop = threading.Event()
        running = self._watcher is not None
        self._watcher = None
        if running:
            self.start()

    def _watch(self, interval: float) -> None:
        failing = False
        while not self._stop.wait(interval):
            try:
                self.sweep()
                self.deliver()
            except Exception:
                if not failing:
                    _log.exception("kzai_guard: looking for review deadlines failed")
                failing = True
            else:
                if failing:
                    _log.warning("kzai_guard: looking for review deadlines works again")
                failing = False

    # -- helpers ----------------------------------------------------------------------------

    def _findings_store(self) -> DeadlineStore:
        store = self._guard.store
        if not hasattr(store, "record_deadline_finding"):
            raise ConfigurationError(
                f"the store {type(store).__name__} keeps no deadline findings; use the SQL "
                "store (sqlite:///, postgresql://, memory://) or set deadline_check_seconds "
                "to None"
            )
        return cast(DeadlineStore, store)

    def _audit(self, store: DeadlineStore, finding: DeadlineFinding, subject: str) -> None:
        """Write the finding's audit record; one that fails is written by a later look."""
        try:
            self._write_record(finding, subject)
        except Exception:
            _log.exception("kzai_guard: the audit record of a deadline finding failed")
            return
        store.mark_deadline_audited(finding.id, self._guard.now())

    def _write_record(self, finding: DeadlineFinding, subject: str) -> None:
        written = self._guard.auditor.event(
            _KIND[finding.state],
            subject=subject or None,
            policy=finding.policy,
            review_id=finding.review_id,
            detail=f"deadline {finding.deadline.isoformat()}",
            record_id=finding.id,
        )
        if written is not None:
            written.result(timeout=_AUDIT_WAIT_S)


def notification_body(finding: DeadlineFinding, ticket: ReviewTicket) -> bytes:
    """The webhook body of a finding: JSON naming the ticket, never the person."""
    return orjson.dumps(
        {
            "id": finding.id,
            "type": _KIND[finding.state].value,
            "review_id": finding.review_id,
            "decision_id": ticket.decision_id,
            "policy": finding.policy,
            "reason": ticket.reason,
            "deadline": finding.deadline.isoformat(),
            "found_at": finding.found_at.isoformat(),
        }
    )
