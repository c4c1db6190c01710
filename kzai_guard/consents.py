"""The consent ledger (KZ-PD 7, 8): grant, withdraw, look up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from kzai_guard.audit.record import EventKind
from kzai_guard.auditor import Auditor
from kzai_guard.core.consent import CollectionMethod, Consent, WithdrawalRestriction
from kzai_guard.core.subject import check_subject, check_text
from kzai_guard.errors import WithdrawalRestricted
from kzai_guard.fact_cache import FactCache
from kzai_guard.ids import new_id
from kzai_guard.stores.base import Store

__all__ = ["Consents"]


class Consents:
    """Consents of the people decisions are about. A withdrawal applies to the next decision."""

    def __init__(
        self, store: Store, cache: FactCache, auditor: Auditor, now: Callable[[], datetime]
    ) -> None:
        self._now = now
        self._store = store
        self._cache = cache
        self._auditor = auditor

    def grant(
        self,
        subject: str,
        purpose: str,
        notice_version: str,
        *,
        notice_digest: str | None = None,
        method: CollectionMethod = CollectionMethod.API,
        term: timedelta | None = None,
        expires_at: datetime | None = None,
        withdrawal_restriction: WithdrawalRestriction | None = None,
    ) -> Consent:
        """Record that ``subject`` consented to ``purpose`` under ``notice_version`` of the notice.

        ``term`` (or ``expires_at``) ties the consent to the time its purpose needs.
        ``withdrawal_restriction`` records the law or unfulfilled obligation that forbids
        withdrawing it until a date (KZ-PD 8); until then :meth:`withdraw` refuses. Example::

            guard.consents.grant(
                "A-1", "credit-scoring", "2026-01",
                withdrawal_restriction=kg.WithdrawalRestriction(
                    ground="loan agreement No. 77-1 is outstanding",
                    until=datetime(2027, 6, 30, tzinfo=UTC),
                ),
            )
        """
        check_subject(subject)
        check_text(purpose, "purpose", 128)
        check_text(notice_version, "notice_version", 64)
        if notice_digest is not None:
            check_text(notice_digest, "notice_digest", 128)
        if term is not None and expires_at is not None:
            raise ValueError("give term or expires_at, not both")
        now = self._now()
        if term is not None:
            if term <= timedelta(0):
                raise ValueError("term must be positive")
            expires_at = now + term
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        if withdrawal_restriction is not None:
            check_text(withdrawal_restriction.ground, "withdrawal_restriction.ground", 500)
            if withdrawal_restriction.until.tzinfo is None:
                raise ValueError("withdrawal_restriction.until must be timezone-aware")
        consent = Consent(
            id=new_id(),
            subject=subject,
            purpose=purpose,
            notice_version=notice_version,
            notice_digest=notice_digest,
            method=CollectionMethod(method),
            granted_at=now,
            expires_at=expires_at,
            withdrawal_restriction=withdrawal_restriction,
        )
        self._store.add_consent(consent)
        self._cache.forget(subject)
        self._auditor.event(
            EventKind.CONSENT_GRANTED, subject=subject, purpose=purpose, record_id=consent.id
        )
        return consent

    def withdraw(self, subject: str, purpose: str) -> list[Consent]:
        """Withdraw ``subject``'s consents for ``purpose``; returns the consents withdrawn.

        Once this returns, no decision in this process relies on them; other processes sharing
        the store follow within one poll interval. Raises
        :class:`~kzai_guard.errors.WithdrawalRestricted`, withdrawing nothing, while one of them
        has a withdrawal restriction in force; the refusal is audited with its grounds.
        """
        check_subject(subject)
        check_text(purpose, "purpose", 128)
        self._cache.forget(subject)
        try:
            withdrawn = self._store.withdraw_consents(subject, purpose, self._now())
        except WithdrawalRestricted as refused:
            self._auditor.event(
                EventKind.CONSENT_WITHDRAWAL_REFUSED,
                subject=subject,
                purpose=purpose,
                detail=str(refused),
            )
            raise
        self._cache.forget(subject)
        self._auditor.event(EventKind.CONSENT_WITHDRAWN, subject=subject, purpose=purpose)
        return withdrawn

    def of(self, subject: str) -> list[Consent]:
        """Every consent record of ``subject``, withdrawn ones included, oldest first."""
        return self._store.consents_of(check_subject(subject))

    def is_valid(self, subject: str, purpose: str, notice_version: str | None = None) -> bool:
        """True when ``subject`` has a consent in force for ``purpose`` (and notice version)."""
        state = self._cache.state(check_subject(subject))
        return state.consent_valid(purpose, notice_version, self._now())
