"""What the SQL store keeps per decision type rather than per person: kill switches, routings
for disparity, and the outcome counts disparity monitoring judges.

Each is shared by every process and host through the store; a switch or routing change is an
entry of the change feed (:attr:`~kzai_guard.stores.base.ChangeKind.SWITCH`), so the fact
caches of other processes read it at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kzai_guard.stores.base import ChangeKind, OutcomeCount, RoutingState, SwitchState
from kzai_guard.stores.rows import _dt, _us
from kzai_guard.stores.sql_queries import SqlQueries

__all__ = ["OUTCOME_SCHEMA", "PolicyStateQueries"]

OUTCOME_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kzg_outcome_counts ("
    "policy TEXT NOT NULL, ground TEXT NOT NULL, grp TEXT NOT NULL, day BIGINT NOT NULL, "
    "decisions BIGINT NOT NULL, favourable BIGINT NOT NULL, "
    "PRIMARY KEY (policy, ground, grp, day))"
)
"""Decisions and favourable outcomes per policy, protected ground, group and day."""


class PolicyStateQueries(SqlQueries):
    """The kill-switch, routing and outcome-count store methods."""

    def set_switch(self, state: SwitchState) -> None:
        self._set_state("kzg_switches", "suspended", state, state.suspended)

    def switches(self) -> list[SwitchState]:
        return [SwitchState(*row) for row in self._states("kzg_switches", "suspended")]

    def set_routing(self, state: RoutingState) -> None:
        self._set_state("kzg_routings", "routed", state, state.routed)

    def routings(self) -> list[RoutingState]:
        return [RoutingState(*row) for row in self._states("kzg_routings", "routed")]

    def add_outcome_counts(self, counts: Sequence[OutcomeCount]) -> None:
        if not counts:
            return
        self._write(
            [
                (
                    "INSERT INTO kzg_outcome_counts "
                    "(policy, ground, grp, day, decisions, favourable) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (policy, ground, grp, day) DO UPDATE SET "
                    "decisions = kzg_outcome_counts.decisions + excluded.decisions, "
                    "favourable = kzg_outcome_counts.favourable + excluded.favourable",
                    (c.policy, c.ground, c.group, _us(c.day), c.decisions, c.favourable),
                )
                for c in counts
            ]
        )

    def outcome_counts(
        self, since: datetime, until: datetime, policy: str | None = None
    ) -> list[OutcomeCount]:
        condition = "" if policy is None else " AND policy = ?"
        params: tuple[Any, ...] = (_us(since), _us(until))
        rows = self._read(
            "SELECT policy, ground, grp, day, decisions, favourable FROM kzg_outcome_counts "
            f"WHERE day >= ? AND day < ?{condition} ORDER BY policy, ground, grp, day",
            params if policy is None else (*params, policy),
        )
        return [OutcomeCount(r[0], r[1], r[2], _dt(r[3]), int(r[4]), int(r[5])) for r in rows]

    def _set_state(
        self, table: str, flag: str, state: SwitchState | RoutingState, value: bool
    ) -> None:
        """Upsert one policy's row of ``table`` (its ``flag`` set to ``value``) and note the
        change in the feed."""
        self._write(
            [
                (
                    f"INSERT INTO {table} (policy, {flag}, changed_at, changed_by, reason) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (policy) DO UPDATE SET "
                    f"{flag} = excluded.{flag}, changed_at = excluded.changed_at, "
                    "changed_by = excluded.changed_by, reason = excluded.reason",
                    (
                        state.policy,
                        int(value),
                        _us(state.changed_at),
                        state.changed_by,
                        state.reason,
                    ),
                )
            ],
            (ChangeKind.SWITCH, None),
        )

    def _states(self, table: str, flag: str) -> list[tuple[Any, ...]]:
        """Every policy's row of ``table``: policy, flag, time, who, reason."""
        rows = self._read(
            f"SELECT policy, {flag}, changed_at, changed_by, reason FROM {table} ORDER BY policy"
        )
        return [(r[0], bool(r[1]), _dt(r[2]), r[3], r[4]) for r in rows]
