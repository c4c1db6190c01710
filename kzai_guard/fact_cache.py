"""The facts the guard reads on every decision, kept in memory and kept honest.

A consent check must cost no database round trip when nothing changed, yet a withdrawal must take
effect on the very next decision in this process, and within one second in the other processes
that share the store. So:

- each subject's consents and objections are loaded once and kept (bounded, oldest evicted);
- a write through this process drops the subject's entry *before* and again *after* the store
  commits, and a load only keeps what it read if no drop happened meanwhile (an epoch counter), so
  no decision that starts after the commit can read the old state;
- a watcher thread polls the store's change feed (every ``poll_interval`` seconds) and drops
  what other processes changed, and reloads the kill switches and the routings for disparity;
- :attr:`FactCache.read_at` is when the feed was last read successfully (the start of that read,
  on the monotonic clock): facts are only as fresh as that, and the gates refuse significant
  decisions once it is older than the guard's ``stale_after`` (see
  :func:`~kzai_guard.core.freshness.facts_trusted`). A read of the store that fails (the change
  feed, or a subject's facts) shows the store out of reach: from then on no cached fact is
  trusted (:meth:`FactCache.distrust`) until a read of the change feed that *began after* the
  failure succeeds. So a fact that comes back from the store with its connection (a subject's
  consents) is never combined with one the feed has not confirmed since (a kill switch thrown
  elsewhere meanwhile). When the store is back, that poll applies what changed meanwhile and
  makes the facts fresh again;
- in a child process after a fork, the cache gets new locks and its own watcher thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import inf
from time import monotonic
from typing import NamedTuple

from kzai_guard.core.consent import Consent, consent_is_valid
from kzai_guard.forking import remake_after_fork
from kzai_guard.stores.base import ChangeKind, Store

__all__ = ["DEFAULT_POLL_INTERVAL", "FactCache", "PolicyFacts", "SubjectState"]

DEFAULT_POLL_INTERVAL = 0.25
_DEFAULT_LIMIT = 100_000
_log = logging.getLogger("kzai_guard")
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


class PolicyFacts(NamedTuple):
    """What a subject's state says for one policy's decisions, and the times over which it
    holds: from ``since`` (included) to ``until`` (excluded)."""

    consent: bool
    """Whether a consent for the policy's purpose (and notice version) counts."""
    objection: bool
    """Whether an objection in force covers the policy."""
    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class SubjectState:
    """What the store says about one subject: consents in force by purpose, objections.

    :attr:`spans` remembers, per ``(purpose, notice_version, policy)``, the last
    :meth:`facts_for`: a decision whose time falls inside its span takes the facts from there
    instead of judging every consent again. A state never changes (a change in the store
    replaces it), so what it remembers stays right for as long as the state is used.
    """

    consents: dict[str, tuple[Consent, ...]]
    objects_to_all: bool
    objects_to: frozenset[str]
    spans: dict[tuple[str | None, str | None, str], PolicyFacts] = field(
        default_factory=dict, compare=False, repr=False
    )

    def consent_valid(self, purpose: str, notice_version: str | None, at: datetime) -> bool:
        """True when a consent for ``purpose`` counts at ``at``."""
        for consent in self.consents.get(purpose, ()):
            if consent_is_valid(consent, notice_version=notice_version, at=at):
                return True
        return False

    def facts_for(
        self, purpose: str | None, notice_version: str | None, policy: str, at: datetime
    ) -> PolicyFacts:
        """:meth:`consent_valid` (false without a ``purpose``) and :meth:`objected` at ``at``,
        with the span around ``at`` over which they hold; kept in :attr:`spans` (a naive ``at``
        gets an empty span, kept nowhere).

        The rule (:func:`~kzai_guard.core.consent.consent_is_valid`) depends on the time only
        through comparisons with the consents' grant and expiry times, so its answer holds
        between two neighbouring ones of those times.
        """
        valid = purpose is not None and self.consent_valid(purpose, notice_version, at)
        objection = self.objected(policy)
        if at.utcoffset() is None:
            return PolicyFacts(valid, objection, at, at)
        since, until = _EARLIEST, _LATEST
        for consent in self.consents.get(purpose, ()) if purpose is not None else ():
            for edge in (consent.granted_at, consent.expires_at):
                if edge is None:
                    continue
                if edge <= at:
                    since = max(since, edge)
                else:
                    until = min(until, edge)
        facts = PolicyFacts(valid, objection, since, until)
        self.spans[(purpose, notice_version, policy)] = facts
        return facts

    def objected(self, policy: str) -> bool:
        """True when an objection in force covers ``policy``."""
        return self.objects_to_all or policy in self.objects_to


class FactCache:
    """Subject states and kill switches, cached per process and invalidated by the change feed."""

    def __init__(
        self,
        store: Store,
        *,
        limit: int = _DEFAULT_LIMIT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._store = store
        self._limit = limit
        self._poll_interval = poll_interval
        self._states: dict[str, SubjectState] = {}
        self.cached_state = self._states.get
        """The subject's cached state, or ``None`` (or a given default); never reads the
        store. The cache's own lookup, bound once: a decision that finds its subject cached
        makes no Python call for it."""
        self._epoch = 0
        self._lock = threading.Lock()
        read_at = monotonic()
        self._seq = store.latest_change()
        self.suspended: frozenset[str] = self._load_suspended()
        self.routed: frozenset[str] = self._load_routed()
        """The policies whose decisions are routed to humans for disparity."""
        self.read_at = read_at
        """When the store's facts were last read successfully (monotonic clock, seconds)."""
        self._switch_epoch = 0
        self._reload_switches = False
        self._failures = 0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        remake_after_fork(self)

    # -- the hot path -----------------------------------------------------------------------

    def state(self, subject: str) -> SubjectState:
        """The subject's state; read from the store only when not cached. A read that fails
        makes every cached fact untrusted (:meth:`distrust`) and reaches the caller."""
        state = self._states.get(subject)
        if state is not None:
            return state
        epoch = self._epoch
        try:
            state = self._load(subject)
        except BaseException:
            self.distrust()
            raise
        with self._lock:
            if self._epoch == epoch:
                if len(self._states) >= self._limit:
                    self._states.pop(next(iter(self._states)))
                self._states[subject] = state
        return state

    def cached(self, subject: str, default: SubjectState) -> SubjectState:
        """The subject's cached state, or ``default``; never reads the store."""
        return self._states.get(subject, default)

    # -- invalidation -----------------------------------------------------------------------

    def forget(self, subject: str) -> None:
        """Drop the subject's cached state; loads that began before this are not kept."""
        with self._lock:
            self._epoch += 1
            self._states.pop(subject, None)

    def forget_everyone(self) -> None:
        """Drop every cached state (an erasure: its change feed entry names nobody)."""
        with self._lock:
            self._epoch += 1
            self._states.clear()

    def set_suspended(self, policy: str, suspended: bool) -> None:
        """Apply a kill-switch change made by this process at once."""
        with self._lock:
            self._switch_epoch += 1
            current = set(self.suspended)
            if suspended:
                current.add(policy)
            else:
                current.discard(policy)
            self.suspended = frozenset(current)

    def set_routed(self, policy: str, routed: bool) -> None:
        """Apply a routing change made by this process at once."""
        with self._lock:
            self._switch_epoch += 1
            current = set(self.routed)
            if routed:
                current.add(policy)
            else:
                current.discard(policy)
            self.routed = frozenset(current)

    def distrust(self) -> None:
        """The store failed: trust no cached fact until a change-feed read that begins after
        this call succeeds (:attr:`read_at` becomes minus infinity until then)."""
        with self._lock:
            self._failures += 1
            self.read_at = -inf

    def refresh(self) -> None:
        """Apply the store's changes since the last refresh (what the watcher does).

        On success :attr:`read_at` becomes the time this refresh began, unless a store failure
        was seen meanwhile (:meth:`distrust`); a store error reaches the caller and makes every
        cached fact untrusted until a later refresh succeeds."""
        failures = self._failures
        read_at = monotonic()
        try:
            self._apply_changes()
        except BaseException:
            self.distrust()
            raise
        with self._lock:
            if self._failures == failures:
                self.read_at = read_at

    def _apply_changes(self) -> None:
        changes = self._store.changes_since(self._seq)
        switches = self._reload_switches
        for change in changes:
            if change.kind is ChangeKind.SWITCH:
                switches = True
            elif change.subject is not None:
                self.forget(change.subject)
            else:
                self.forget_everyone()
        if switches:
            # A switch thrown here while the store was read must not be undone by that read:
            # keep the local state and read again on the next poll.
            epoch = self._switch_epoch
            loaded = self._load_suspended()
            routed = self._load_routed()
            with self._lock:
                self._reload_switches = self._switch_epoch != epoch
                if not self._reload_switches:
                    self.suspended = loaded
                    self.routed = routed
        if changes:
            self._seq = changes[-1].seq

    def start(self) -> None:
        """Start the watcher thread (idempotent)."""
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="kzai-guard-facts", daemon=True
            )
            self._watcher.start()

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def after_fork_in_child(self) -> None:
        """In a forked child: new locks, and a watcher of its own if the parent had one."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        running = self._watcher is not None
        self._watcher = None
        if running:
            self.start()

    # -- helpers ----------------------------------------------------------------------------

    def _watch(self) -> None:
        failing = False
        while not self._stop.wait(self._poll_interval):
            try:
                self.refresh()
            except Exception:
                if not failing:
                    _log.exception(
                        "kzai_guard: reading the store's change feed failed; significant "
                        "decisions are refused once the facts are older than stale_after"
                    )
                failing = True
            else:
                if failing:
                    _log.warning("kzai_guard: the store's change feed is readable again")
                failing = False

    def _load(self, subject: str) -> SubjectState:
        consents: dict[str, list[Consent]] = {}
        for consent in self._store.consents_of(subject):
            if consent.withdrawn_at is None:
                consents.setdefault(consent.purpose, []).append(consent)
        objections = [o for o in self._store.objections_of(subject) if o.withdrawn_at is None]
        return SubjectState(
            consents={purpose: tuple(items) for purpose, items in consents.items()},
            objects_to_all=any(o.policy is None for o in objections),
            objects_to=frozenset(o.policy for o in objections if o.policy is not None),
        )

    def _load_suspended(self) -> frozenset[str]:
        return frozenset(s.policy for s in self._store.switches() if s.suspended)

    def _load_routed(self) -> frozenset[str]:
        return frozenset(r.policy for r in self._store.routings() if r.routed)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
