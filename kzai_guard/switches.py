"""Kill switches (KZ-AI 8(1), 18(2); AI Act 14(4)(e)): suspend a decision type at once; and
routing for disparity (KZ-AI 6): send what the AI would decide to humans until an officer clears
it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kzai_guard.audit.record import EventKind
from kzai_guard.auditor import Auditor
from kzai_guard.core.subject import check_text
from kzai_guard.fact_cache import FactCache
from kzai_guard.stores.base import RoutingState, Store, SwitchState

__all__ = ["Switches"]


class Switches:
    """Suspend and resume decision types, route their decisions to humans and clear that;
    effective at once here, within a poll elsewhere."""

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

    def suspend(self, policy: str, *, by: str, reason: str | None = None) -> None:
        """Stop every decision of ``policy`` (503 ``suspended``) until :meth:`resume`."""
        self._set(policy, True, by, reason)

    def resume(self, policy: str, *, by: str, reason: str | None = None) -> None:
        """Let decisions of ``policy`` run again."""
        self._set(policy, False, by, reason)

    def is_suspended(self, policy: str) -> bool:
        """True while ``policy`` is suspended."""
        return policy in self._cache.suspended

    def route(self, policy: str, *, by: str, reason: str | None = None) -> None:
        """Route the decisions of ``policy`` that the AI would make to humans (202
        ``human-review``, reason ``disparity``) until :meth:`clear_route`. The disparity monitor
        does this when a policy with ``action = "route"`` crosses its thresholds."""
        self._set_routing(policy, True, by, reason)

    def clear_route(self, policy: str, *, by: str, reason: str | None = None) -> None:
        """Let the AI make the decisions of ``policy`` again (the officer's call)."""
        self._set_routing(policy, False, by, reason)

    def is_routed(self, policy: str) -> bool:
        """True while the decisions of ``policy`` are routed to humans for disparity."""
        return policy in self._cache.routed

    def _set_routing(self, policy: str, routed: bool, by: str, reason: str | None) -> None:
        self._check(policy, by, reason)
        if routed:
            self._cache.set_routed(policy, True)
        self._store.set_routing(RoutingState(policy, routed, self._now(), by, reason))
        self._cache.set_routed(policy, routed)
        self._auditor.event(
            EventKind.ROUTING_STARTED if routed else EventKind.ROUTING_CLEARED,
            policy=policy,
            reviewer=by,
            detail=reason,
        )

    def _check(self, policy: str, by: str, reason: str | None) -> None:
        if policy not in self._policies:
            raise ValueError(f"unknown policy {policy!r}; known: {sorted(self._policies)}")
        check_text(by, "by (who threw the switch)", 128)
        if reason is not None:
            check_text(reason, "reason", 2000, multiline=True)

    def _set(self, policy: str, suspended: bool, by: str, reason: str | None) -> None:
        self._check(policy, by, reason)
        if suspended:
            self._cache.set_suspended(policy, True)
        self._store.set_switch(SwitchState(policy, suspended, self._now(), by, reason))
        self._cache.set_suspended(policy, suspended)
        self._auditor.event(
            EventKind.SWITCH_SUSPENDED if suspended else EventKind.SWITCH_RESUMED,
            policy=policy,
            reviewer=by,
            detail=reason,
        )
