"""Objections to automated decisions (KZ-AI 7(2), KZ-PD 19-1, GDPR 21/22(3))."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kzai_guard.audit.record import EventKind
from kzai_guard.auditor import Auditor
from kzai_guard.core.consent import Objection
from kzai_guard.core.subject import check_subject, check_text
from kzai_guard.fact_cache import FactCache
from kzai_guard.ids import new_id
from kzai_guard.stores.base import Store

__all__ = ["Objections"]


class Objections:
    """The objection registry: an objected decision is routed to a human, not made by the model."""

    def __init__(
        self,
        store: Store,
        cache: FactCache,
        auditor: Auditor,
        policies: frozenset[str],
        now: Callable[[], datetime],
    ) -> None:
        self._now = now
        self._store = store
        self._cache = cache
        self._auditor = auditor
        self._policies = policies

    def record(
        self, subject: str, policy: str | None = None, *, channel: str | None = None
    ) -> Objection:
        """Record ``subject``'s objection to ``policy`` (``None``: to every automated decision)."""
        check_subject(subject)
        self._check_policy(policy)
        if channel is not None:
            check_text(channel, "channel", 64)
        objection = Objection(
            id=new_id(), subject=subject, policy=policy, recorded_at=self._now(), channel=channel
        )
        self._cache.forget(subject)
        self._store.add_objection(objection)
        self._cache.forget(subject)
        self._auditor.event(
            EventKind.OBJECTION_RECORDED, subject=subject, policy=policy, record_id=objection.id
        )
        return objection

    def withdraw(self, subject: str, policy: str | None = None) -> list[Objection]:
        """Withdraw ``subject``'s objection to ``policy`` (``None``: the general one)."""
        check_subject(subject)
        self._check_policy(policy)
        self._cache.forget(subject)
        withdrawn = self._store.withdraw_objections(subject, policy, self._now())
        self._cache.forget(subject)
        self._auditor.event(EventKind.OBJECTION_WITHDRAWN, subject=subject, policy=policy)
        return withdrawn

    def active(self, subject: str) -> list[Objection]:
        """The objections of ``subject`` in force."""
        return [
            o for o in self._store.objections_of(check_subject(subject)) if o.withdrawn_at is None
        ]

    def _check_policy(self, policy: str | None) -> None:
        if policy is not None and policy not in self._policies:
            raise ValueError(f"unknown policy {policy!r}; known: {sorted(self._policies)}")
