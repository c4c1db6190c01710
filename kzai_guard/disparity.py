"""Run-time disparity monitoring (KZ-AI 6; AI Act 10(2)(f)), off the request thread.

A decision of a monitored policy that ran, was made by the AI (not by a human reviewer) and
whose function said whether its outcome was favourable (:func:`kzai_guard.mark_outcome`) is
handed to :meth:`DisparityMonitor.observe`, which only queues it. A writer thread:

1. asks the app's group resolver which coarse group the subject is in for each ground the
   policy monitors (the groups are never stored with the subject, nor written anywhere else);
2. adds up decisions and favourable outcomes per policy, ground, group and day in memory, and
   every :data:`FLUSH_SECONDS` adds them to the store's counts in one transaction (an increment:
   every process and host adds to the same counts);
3. after each flush, judges each monitored policy on the counts of its window
   (:func:`kzai_guard.core.disparity.assess`). A group that becomes flagged makes a
   ``disparity.detected`` audit record and adds one to the ``kzai_guard.disparity.detected``
   metric; with ``action = "route"`` the policy's AI decisions are routed to humans (until an
   officer clears it, :meth:`~kzai_guard.switches.Switches.clear_route`), with
   ``action = "suspend"`` the policy's kill switch is thrown.

Each process reports a group once while it stays flagged (again after it stopped being flagged
and crossed once more); several processes may each report it. A process that starts while a
person has resumed the policy (or cleared its routing) takes the groups flagged then as
reported: the person's call stands until a group stops being flagged and crosses again, in a
process started later as in one that was running. While the store fails, counts stay
in memory and are tried again at the next flush. In a child process after a fork the monitor
gets a thread, queue and counts of its own; the parent stores what it had counted.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from time import monotonic
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

from kzai_guard.audit.record import EventKind
from kzai_guard.auditor import Auditor
from kzai_guard.core.disparity import GroupDisparity, GroupOutcomes, assess
from kzai_guard.core.monitoring import DisparityMonitoring
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.subject import check_text
from kzai_guard.core.vocabulary import DisparityAction, ProtectedGround
from kzai_guard.errors import ConfigurationError
from kzai_guard.forking import remake_after_fork
from kzai_guard.stores.base import OutcomeCount, Store
from kzai_guard.switches import Switches

if TYPE_CHECKING:
    from kzai_guard.gate import Decision

__all__ = [
    "FLUSH_SECONDS",
    "MONITOR_NAME",
    "PENDING_LIMIT",
    "DisparityMonitor",
    "GroupResolver",
    "window_of",
]

GroupResolver = Callable[[str], Mapping[ProtectedGround | str, str]]
"""Given a subject, its coarse group per ground (for example ``{"sex": "f",
"age-band": "25-34"}``); grounds it leaves out are not counted for that decision."""

FLUSH_SECONDS = 1.0
PENDING_LIMIT = 65_536
"""How many decisions may wait for the writer; past that, decisions are not counted (logged)."""
"""How often the writer adds what it counted to the store and judges the policies again."""
MONITOR_NAME = "disparity-monitor"
"""Who the kill switch (or the routing) names when the monitor suspends (or routes) a policy."""
_GROUP_LENGTH = 64
_BATCH = 1024
_USABLE_GROUPS_LIMIT = 10_000
_log = logging.getLogger("kzai_guard")
_STOP = object()
_Key = tuple[str, str, str, datetime]


def window_of(monitoring: DisparityMonitoring, now: datetime) -> tuple[datetime, datetime]:
    """The days a policy is judged on at ``now``: its last ``window_days``, today included."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=monitoring.window_days - 1), today + timedelta(days=1)


class DisparityMonitor:
    """The disparity monitor of one guard."""

    def __init__(
        self,
        store: Store,
        policies: Mapping[str, DecisionPolicy],
        resolver: GroupResolver | None,
        auditor: Auditor,
        switches: Switches,
        now: Callable[[], datetime],
        meter_provider: Any = None,
    ) -> None:
        self._monitored = {
            name: policy.monitoring
            for name, policy in policies.items()
            if policy.monitoring is not None
        }
        if self._monitored and resolver is None:
            raise ConfigurationError(
                f"policy {sorted(self._monitored)[0]!r} monitors disparity but the guard has no "
                "group resolver; give the guard groups=... (a function from a subject to its "
                "group per ground)"
            )
        self._store = store
        self._resolver = resolver
        self._auditor = auditor
        self._switches = switches
        self._now = now
        meter = metrics.get_meter("kzai_guard", meter_provider=meter_provider)
        self._detected = meter.create_counter(
            "kzai_guard.disparity.detected",
            unit="{finding}",
            description="Groups whose outcomes crossed a policy's disparity thresholds",
        )
        self._alerted: set[tuple[str, str, str]] = set()
        self._closed = False
        self._thread: threading.Thread | None = None
        if self._monitored:
            self._start()
            remake_after_fork(self)

    @property
    def monitored(self) -> frozenset[str]:
        """The names of the policies whose outcomes are counted."""
        return frozenset(self._monitored)

    def observer(self, policy: DecisionPolicy) -> Callable[[Decision], None] | None:
        """What a gate calls after each decision of ``policy`` that ran; ``None`` when the
        policy is not monitored. Counts a decision about a subject, made without a human
        reviewer, whose outcome the function marked."""
        if policy.name not in self._monitored:
            return None
        name = policy.name
        put = self._put

        def observe(decision: Decision) -> None:
            favourable = decision.context.favourable
            subject = decision.subject
            if favourable is not None and subject is not None and decision.reviewer is None:
                put((name, subject, favourable))

        return observe

    def _put(self, item: tuple[str, str, bool]) -> None:
        # Bounded: a resolver slower than the traffic must not grow memory without end. A
        # decision left out is counted nowhere, and said so at the next write.
        if self._queue.qsize() < PENDING_LIMIT:
            self._queue.put(item)
        else:
            self._dropped += 1

    # -- reading ----------------------------------------------------------------------------

    def disparities(
        self, policy: str, at: datetime | None = None
    ) -> dict[str, list[GroupDisparity]]:
        """Each monitored ground of ``policy`` with its groups compared, on the stored counts of
        the policy's window at ``at`` (default now)."""
        monitoring = self._monitored.get(policy)
        if monitoring is None:
            raise ConfigurationError(f"policy {policy!r} has no disparity monitoring")
        since, until = window_of(monitoring, at or self._now())
        counts = self._store.outcome_counts(since, until, policy)
        return judge(counts, monitoring)

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until what was observed so far is counted in the store and judged."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            raise TimeoutError("disparity counts were not stored in time")

    def close(self) -> None:
        """Store what was counted and stop the writer."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)

    def after_fork_in_child(self) -> None:
        """In a forked child: a writer, queue and counts of its own."""
        self._alerted = set()
        if not self._closed:
            self._start()

    def _start(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, str, bool] | threading.Event | object] = (
            queue.SimpleQueue()
        )
        self._counts: dict[_Key, list[int]] = {}
        self._usable_groups: set[str] = set()
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="kzai-guard-disparity", daemon=True)
        self._thread.start()

    # -- the writer -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._acknowledge_overruled()
        except Exception:
            _log.exception("kzai_guard: reading what people decided about past crossings failed")
        stop = False
        next_flush = monotonic() + FLUSH_SECONDS
        while not stop:
            signals: list[threading.Event] = []
            batch: list[tuple[str, str, bool]] = []
            try:
                item = self._queue.get(timeout=max(0.0, next_flush - monotonic()))
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    signals.append(item)
                elif isinstance(item, tuple):
                    batch.append(item)
                if signals or stop or len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if batch:
                self._count(batch)
            # At least every FLUSH_SECONDS, however busy: a steady stream never empties the queue.
            if signals or stop or monotonic() >= next_flush:
                if self._counts or signals:
                    self._flush()
                next_flush = monotonic() + FLUSH_SECONDS
            for signal in signals:
                signal.set()

    def _count(self, batch: list[tuple[str, str, bool]]) -> None:
        day = self._now().replace(hour=0, minute=0, second=0, microsecond=0)
        counts = self._counts
        usable = self._usable_groups
        for policy, subject, favourable in batch:
            try:
                groups = self._resolver(subject)  # type: ignore[misc]
            except Exception:
                _log.exception("kzai_guard: the group resolver failed; a decision is not counted")
                continue
            for ground in self._monitored[policy].grounds:
                group = groups.get(ground)
                if group is None:
                    continue
                if group not in usable:
                    try:
                        check_text(group, f"the group for {ground.value}", _GROUP_LENGTH)
                    except (TypeError, ValueError) as exc:
                        _log.error("kzai_guard: the group resolver gave an unusable group: %s", exc)
                        continue
                    if len(usable) < _USABLE_GROUPS_LIMIT:
                        usable.add(group)
                tally = counts.get((policy, ground.value, group, day))
                if tally is None:
                    tally = counts[policy, ground.value, group, day] = [0, 0]
                tally[0] += 1
                tally[1] += favourable

    def _flush(self) -> None:
        dropped, self._dropped = self._dropped, 0
        if dropped:
            _log.warning(
                "kzai_guard: %d decisions were not counted for disparity: %d were waiting for "
                "the group resolver",
                dropped,
                PENDING_LIMIT,
            )
        counts, self._counts = self._counts, {}
        try:
            self._store.add_outcome_counts(
                [
                    OutcomeCount(*key, decisions, favourable)
                    for key, (decisions, favourable) in counts.items()
                ]
            )
        except Exception:
            _log.exception("kzai_guard: storing disparity counts failed; tried again later")
            for key, (decisions, favourable) in counts.items():
                tally = self._counts.setdefault(key, [0, 0])
                tally[0] += decisions
                tally[1] += favourable
            return
        for policy in self._monitored:
            try:
                self._judge(policy)
            except Exception:
                _log.exception("kzai_guard: judging the disparity of %r failed", policy)

    def _judge(self, policy: str) -> None:
        monitoring = self._monitored[policy]
        for ground, groups in self.disparities(policy).items():
            for disparity in groups:
                key = (policy, ground, disparity.group)
                if not disparity.flagged:
                    self._alerted.discard(key)
                elif key not in self._alerted:
                    self._alerted.add(key)
                    self._report(policy, ground, disparity, monitoring)

    def _acknowledge_overruled(self) -> None:
        """Take as reported the groups flagged now of each policy whose action a person undid
        (resumed, or cleared its routing), so that this process does not undo their call."""
        overruled = {
            DisparityAction.SUSPEND: {
                s.policy
                for s in self._store.switches()
                if not s.suspended and s.changed_by != MONITOR_NAME
            },
            DisparityAction.ROUTE: {
                r.policy
                for r in self._store.routings()
                if not r.routed and r.changed_by != MONITOR_NAME
            },
        }
        for policy, monitoring in self._monitored.items():
            if policy not in overruled.get(monitoring.action, ()):
                continue
            for ground, groups in self.disparities(policy).items():
                self._alerted.update((policy, ground, d.group) for d in groups if d.flagged)

    def _report(
        self,
        policy: str,
        ground: str,
        disparity: GroupDisparity,
        monitoring: DisparityMonitoring,
    ) -> None:
        detail = describe(ground, disparity, monitoring.action)
        self._auditor.event(EventKind.DISPARITY_DETECTED, policy=policy, detail=detail)
        self._detected.add(
            1,
            {
                "kzai_guard.policy": policy,
                "kzai_guard.ground": ground,
                "kzai_guard.group": disparity.group,
                "kzai_guard.action": monitoring.action.value,
            },
        )
        _log.warning("kzai_guard: policy %r: %s", policy, detail)
        if monitoring.action is DisparityAction.SUSPEND and not self._switches.is_suspended(policy):
            self._switches.suspend(policy, by=MONITOR_NAME, reason=detail)
        elif monitoring.action is DisparityAction.ROUTE and not self._switches.is_routed(policy):
            self._switches.route(policy, by=MONITOR_NAME, reason=detail)


def judge(
    counts: list[OutcomeCount], monitoring: DisparityMonitoring
) -> dict[str, list[GroupDisparity]]:
    """The counts of one policy added up over their days, compared per monitored ground."""
    totals: dict[str, dict[str, list[int]]] = {g.value: {} for g in sorted(monitoring.grounds)}
    for count in counts:
        groups = totals.get(count.ground)
        if groups is None:
            continue
        tally = groups.setdefault(count.group, [0, 0])
        tally[0] += count.decisions
        tally[1] += count.favourable
    return {
        ground: assess(
            (GroupOutcomes(group, n, x) for group, (n, x) in groups.items()),
            monitoring.thresholds,
        )
        for ground, groups in totals.items()
    }


def describe(ground: str, disparity: GroupDisparity, action: DisparityAction) -> str:
    """One line for the audit record: the ground, the groups and the figures."""
    return (
        f"{ground}={disparity.group}: selection rate {disparity.rate:.3f} "
        f"({disparity.favourable}/{disparity.decisions}) is {disparity.ratio:.2f} of "
        f"{ground}={disparity.reference}'s, {disparity.difference:.3f} lower, "
        f"p={disparity.p_value:.2g}; action {action.value}"
    )
