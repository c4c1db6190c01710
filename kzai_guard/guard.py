"""The :class:`Guard`: policies, stores, audit trail and HTTP integration, put together once."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from pydantic import ValidationError

from kzai_guard.audit.record import EventKind
from kzai_guard.audit.sink import AuditSink
from kzai_guard.auditor import Auditor
from kzai_guard.consents import Consents
from kzai_guard.core.calendar import WorkingCalendar
from kzai_guard.core.checks import check_explanation_sources, check_policy
from kzai_guard.core.explanation import ExplanationDefaults
from kzai_guard.core.oversight import OverrideAction, ReviewerOverride
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.profiles import Profile
from kzai_guard.core.pseudonym import MIN_KEY_BYTES, Pseudonymizer
from kzai_guard.core.review import Reviewer
from kzai_guard.core.subject import check_subject, check_text
from kzai_guard.core.vocabulary import Autonomy, VulnerabilityGround
from kzai_guard.data_bases import DataBases
from kzai_guard.deadlines import Deadlines
from kzai_guard.decision import guard_function
from kzai_guard.disparity import DisparityMonitor, GroupResolver
from kzai_guard.errors import ConfigurationError, OverrideForbidden, ProhibitedPractice
from kzai_guard.explanations import Explanations
from kzai_guard.fact_cache import FactCache
from kzai_guard.gate import Gate
from kzai_guard.ids import new_id
from kzai_guard.objections import Objections
from kzai_guard.oversight import Oversight
from kzai_guard.reviewers import ReviewerResolver, reviewer_from_auth
from kzai_guard.reviews import Reviews
from kzai_guard.settings import GuardSettings
from kzai_guard.stores.base import ErasedData, Store, StoredDataBasis, StoredExplanation
from kzai_guard.stores.url import open_store
from kzai_guard.subjects import SubjectResolver
from kzai_guard.switches import Switches
from kzai_guard.telemetry import Telemetry

__all__ = [
    "DEFAULT_AUDIT_DIR",
    "DEFAULT_STORE",
    "DEMO_KEY_WARNING",
    "NO_SUBJECT_RESOLVER",
    "Guard",
]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_STORE = "sqlite:///kzai-guard.db"
DEFAULT_AUDIT_DIR = "kzai-audit"
NO_SUBJECT_RESOLVER = (
    "Guard(subject=...) is required: say where a decision's subject comes from, with "
    "kg.from_path_param('applicant_id') (the route names whom it decides about), "
    "kg.from_user() (your app's authentication), a callable scope -> str | None, or "
    "kg.from_header('X-Subject-Id') only behind a gateway that strips that header from "
    "clients' requests and sets it itself (in a policy file: subject_header in [guard], "
    "or subject= to Guard.from_file)"
)
"""The start-up error of a guard given no ``subject=``: no source of the subject is trusted
by default, since a header any client can send would let it name anyone."""
DEMO_KEY_WARNING = (
    "kzai_guard: the audit log %s is signed with the demo key, kept beside it in its keys "
    "directory: whoever can write the directory can sign a rewritten log. Give "
    "Guard(audit_signer=Signer.from_file(...)) a key kept elsewhere (kzai-guard keygen), or "
    "audit_signing_key in the policy file's [guard] table"
)
"""The start-up warning of a guard whose audit log is signed with the demo key."""
_log = logging.getLogger("kzai_guard")
POLICY_ATTRIBUTE = "__kzai_guard_policy__"

VulnerabilityResolver = Callable[[str], Iterable[VulnerabilityGround]]


class Guard:
    """Enforces a set of decision policies for one service.

    Example::

        guard = Guard(
            policies=[DecisionPolicy(name="loan_approval", purpose="credit-scoring", ...)],
            profile="kz",
            store="sqlite:///kzai-guard.db",
            subject=from_path_param("applicant_id"),   # whom the decision is about
            person=from_user(),                        # who asks: the app's authentication
        )
        guard.install(app)

        @app.post("/loans/{applicant_id}/decision")
        @guard.decision("loan_approval")
        async def decide(applicant_id: str) -> dict: ...

    ``audit`` is a sink, or a directory for the signed audit log (the default, ``kzai-audit``),
    written with ``durability`` ``"sync"`` (the default: a decision is released only once its
    record is fsynced, in group commits) or ``"async"`` (released once queued; a crash loses
    the records still queued, up to the queue's 65,536 and the writer's 5 ms linger, and those
    not yet on disk) and signed by ``audit_signer`` (a :class:`kzai_guard.audit.keys.Signer`;
    without one a demo key is made in the directory, and the guard logs
    :data:`DEMO_KEY_WARNING` at start-up), its checkpoints sent to ``audit_witnesses`` (a
    :class:`kzai_guard.audit.witnesses.Witnesses`) for cosigning. Every worker process of the
    host may use the same directory: they write one log. A ``postgresql://`` URL keeps that log
    in PostgreSQL, one log for every host (a signer is then required; see
    ``docs/audit-log.md``, "In PostgreSQL"). With ``"sync"`` a decision's response also waits
    until its explanation is in the store, so that every host sharing the store can serve its
    ``Link``.
    ``subject`` (required) says whom a decision is about: :func:`~kzai_guard.from_path_param`,
    :func:`~kzai_guard.from_user`, a callable, or :func:`~kzai_guard.from_header` behind a
    gateway that strips the header from clients' requests; a guard given none refuses to start
    (:data:`NO_SUBJECT_RESOLVER`). ``person`` finds who is asking on the person's own routes
    (explanations, review tickets, objections); it defaults to ``subject``, which will not do
    when ``subject`` reads a path parameter of the decision route. ``reviewer`` finds the
    authenticated human decision-maker (default: ``scope["user"]`` with the ``ai-reviewer``
    auth scope). ``vulnerability`` says on which grounds a subject is vulnerable. ``groups``
    puts a subject into a coarse group per protected ground, for the policies with disparity
    monitoring (called off the request thread, with the subject only; see
    :mod:`kzai_guard.disparity`). ``pseudonym_key`` keys subject pseudonyms (default: a key
    kept in the store). ``clock`` is the one time source: what consents, objections, tickets
    and switches are stamped with and what decisions are judged by (default: UTC now).
    """

    def __init__(
        self,
        policies: Sequence[DecisionPolicy],
        *,
        profile: Profile | str = Profile.KZ,
        store: Store | str = DEFAULT_STORE,
        audit: AuditSink | str | Path = DEFAULT_AUDIT_DIR,
        durability: Literal["async", "sync"] = "sync",
        audit_signer: Any = None,
        audit_witnesses: Any = None,
        subject: SubjectResolver | None = None,
        person: SubjectResolver | None = None,
        reviewer: ReviewerResolver | None = None,
        vulnerability: VulnerabilityResolver | None = None,
        groups: GroupResolver | None = None,
        pseudonym_key: bytes | None = None,
        calendar: WorkingCalendar | None = None,
        clock: Callable[[], datetime] | None = None,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        **settings: Any,
    ) -> None:
        try:
            self.settings = GuardSettings(profile=profile, **settings)
        except ValidationError as exc:
            raise ConfigurationError(_describe("guard settings", exc)) from exc
        self.profile = self.settings.profile
        if durability not in ("async", "sync"):
            raise ConfigurationError(f"durability must be 'sync' or 'async', not {durability!r}")
        if subject is None:
            raise ConfigurationError(NO_SUBJECT_RESOLVER)
        if not callable(subject):
            raise ConfigurationError(
                f"Guard(subject=...) must be a resolver (a callable scope -> str | None), got "
                f"{type(subject).__name__}; {NO_SUBJECT_RESOLVER.split(': ', 1)[1]}"
            )
        self._policies = self._check(policies)
        self.policy_names = frozenset(self._policies)
        self._owned_store = isinstance(store, str)
        self.store: Store = open_store(store) if isinstance(store, str) else store
        key = pseudonym_key or self.store.secret("pseudonym-key", lambda: os.urandom(32))
        if len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"pseudonym_key must be at least {MIN_KEY_BYTES} bytes; use os.urandom(32)"
            )
        if audit_witnesses is not None and not isinstance(audit, (str, Path)):
            raise ConfigurationError(
                "audit_witnesses cosign the signed audit log: give audit= a directory, or "
                "drop audit_witnesses"
            )
        self.sink: AuditSink = (
            audit
            if not isinstance(audit, (str, Path))
            else _open_audit_log(audit, durability, audit_signer, audit_witnesses)
        )
        self.auditor = Auditor(self.sink, Pseudonymizer(key), self.profile.value)
        self.checked_subjects: dict[str, str] = {}
        """Subjects a gate has found usable, with their pseudonyms (both pure functions of the
        identifier, whatever the policy), so that a returning subject costs every gate one
        dictionary lookup. The gates keep it bounded."""
        self.facts = FactCache(
            self.store, limit=self.settings.cache_limit, poll_interval=self.settings.poll_interval
        )
        self.now: Callable[[], datetime] = clock or _utc_now
        self.subject_resolver: SubjectResolver = subject
        self.person_resolver: SubjectResolver = person or self.subject_resolver
        self.reviewer_resolver: ReviewerResolver = reviewer or reviewer_from_auth()
        self.vulnerability = vulnerability
        self.telemetry = Telemetry(meter_provider, tracer_provider)
        self.consents = Consents(self.store, self.facts, self.auditor, self.now)
        self.objections = Objections(
            self.store, self.facts, self.auditor, self.policy_names, self.now
        )
        self.switches = Switches(self.store, self.facts, self.auditor, self.policy_names, self.now)
        self.calendar = calendar or WorkingCalendar()
        """The working days review deadlines count (Kazakhstan's by default)."""
        self.reviews = Reviews(
            self.store,
            self.auditor,
            self.calendar,
            self.settings.review_deadline_days,
            self.now,
        )
        self.durability = durability
        """``"sync"``: a decision's response waits until its audit record, its explanation and
        its data basis are durable; ``"async"``: none waits (see docs/policies.md)."""
        self.explanations = Explanations(self.store, durable=durability == "sync")
        self.data_bases = DataBases(self.store, durable=durability == "sync")
        """The data each decision rested on (policies that declare ``data_basis``)."""
        self.disparity = DisparityMonitor(
            self.store,
            self._policies,
            groups,
            self.auditor,
            self.switches,
            self.now,
            meter_provider,
        )
        """Counts the outcomes of monitored policies per group and judges them (KZ-AI 6)."""
        self.oversight = Oversight(self)
        self.deadlines = Deadlines(self)
        """Finds tickets due soon or overdue, records and notifies them (see
        :mod:`kzai_guard.deadlines`); looks every ``deadline_check_seconds``."""
        self._gates = {name: Gate(self, policy) for name, policy in self._policies.items()}
        self._closed = False
        self.facts.start()
        self.deadlines.start()

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> Guard:
        """A guard from a TOML file: a ``[guard]`` table and ``[[policy]]`` tables.

        Keyword arguments override or complete the file (resolvers, sinks, keys). Errors name
        the file, the policy, the field and the fix.
        """
        from kzai_guard.config import load_config

        policies, settings = load_config(path)
        try:
            return cls(policies, **{**settings, **overrides})
        except ProhibitedPractice as exc:
            raise ProhibitedPractice(f"{path}: {exc}") from exc
        except ConfigurationError as exc:
            raise ConfigurationError(f"{path}: {exc}") from exc

    # -- integration ------------------------------------------------------------------------

    def install(self, app: Any) -> None:
        """Add the middleware, the person's routes, the reviewer's API and console, and
        (FastAPI) the refusals and the reviewer's API to the OpenAPI.

        The person's and the reviewer's routes go first in the app's router, so they run behind
        every middleware of the app, its authentication included. ``review_console=True``
        without Jinja2 installed raises :class:`ConfigurationError` here.
        """
        from kzai_guard.http.routes import PersonRoute
        from kzai_guard.middleware import GuardMiddleware

        app.add_middleware(GuardMiddleware, guard=self, person_routes=False)
        app.router.routes.insert(0, PersonRoute(self))
        if self.settings.reviews_prefix is not None:
            from kzai_guard.console import console_for
            from kzai_guard.http.review_api import ReviewRoute

            app.router.routes.insert(0, ReviewRoute(self, console_for(self)))
        if hasattr(app, "openapi") and hasattr(app, "openapi_schema"):
            from kzai_guard.http.review_openapi import document_review_api
            from kzai_guard.openapi import document_refusals

            document_refusals(app, self)
            document_review_api(app, self)

    def decision(self, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function whose every call is a decision of policy ``name``."""
        gate = self._gates.get(name)
        if gate is None:
            raise ConfigurationError(
                f"@guard.decision({name!r}): no such policy; known: {sorted(self._gates)}"
            )

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            wrapped = guard_function(gate, fn)
            setattr(wrapped, POLICY_ATTRIBUTE, name)
            return wrapped

        return decorate

    def policy(self, name: str) -> DecisionPolicy:
        """The policy called ``name``."""
        try:
            return self._policies[name]
        except KeyError:
            raise ConfigurationError(
                f"no policy {name!r}; known: {sorted(self._policies)}"
            ) from None

    # -- the person's rights, outside HTTP ---------------------------------------------------

    def explanation(self, decision_id: str) -> StoredExplanation | None:
        """The stored explanation of a decision (its JSON as the decision function gave it)."""
        return self.explanations.get(decision_id)

    def data_basis(self, decision_id: str) -> StoredDataBasis | None:
        """The kept data basis of a decision (all its values, unredacted: for the operator)."""
        return self.data_bases.get(decision_id)

    def explanation_defaults(self, policy: str) -> ExplanationDefaults:
        """What completes the explanations of ``policy`` when they are shown."""
        return self._gates[policy].defaults

    def override(
        self,
        decision_id: str,
        *,
        policy: str,
        reviewer: Reviewer,
        action: OverrideAction | str,
        note: str | None = None,
    ) -> ReviewerOverride:
        """Record that a human corrected or cancelled an automated decision (KZ-AI 17(2)).

        High autonomy means correction is impossible, so it raises :class:`OverrideForbidden`
        (a :class:`ConfigurationError`) there. The override is
        audited and kept; the person's explanation route shows it.
        """
        declared = self.policy(policy)
        if declared.autonomy is Autonomy.HIGH:
            raise OverrideForbidden(
                f"policy {policy!r} declares high autonomy: its decisions cannot be corrected "
                "or cancelled; declare medium autonomy if humans can override it"
            )
        if action not in tuple(OverrideAction):
            raise ValueError("action must be 'correct' or 'cancel'")
        if note is not None:
            check_text(note, "note", 4000, multiline=True)
        kept = self.explanations.get(decision_id) or self.data_bases.get(decision_id)
        done = ReviewerOverride(
            id=new_id(),
            decision_id=decision_id,
            policy=policy,
            reviewer=reviewer.id,
            action=OverrideAction(action),
            note=note,
            at=self.now(),
            subject_ref=None if kept is None else kept.subject_ref,
        )
        # about a known person, the record is sealed under their key: erased with them
        self.auditor.event(
            EventKind.DECISION_OVERRIDDEN,
            subject_ref=done.subject_ref,
            policy=policy,
            reviewer=reviewer.id,
            detail=f"{done.action.value} {decision_id}" + (f": {note}" if note else ""),
        )
        self.store.add_override(done)
        return done

    def erase_subject(self, subject: str) -> ErasedData:
        """Erase a person: from the store, from the explanation archive, from the audit log.

        In this order: the explanations still queued are stored, then the store forgets the
        person (:meth:`~kzai_guard.stores.base.Store.erase_subject`: consents, objections,
        change-feed entries, explanations, data-basis values, the identifier and note of their
        review tickets and the notes of overrides of their decisions), this process's caches
        drop them, and the audit log destroys the key its
        personal fields were sealed under (crypto-shredding: they become unreadable while
        every hash and checkpoint still verifies). On SQLite, the store's and the key store's
        WALs are truncated and the files checked for what was erased
        (:class:`~kzai_guard.errors.ErasureIncomplete` if that cannot be shown; running the
        erasure again finishes it). What remains is listed in docs/privacy.md. Returns what
        the store removed.
        """
        erase = self._log_eraser()
        checked = check_subject(subject)
        pseudonym = self.auditor.pseudonym(checked)
        for archive in (self.explanations, self.data_bases):
            try:
                archive.flush()
            except TimeoutError:
                _log.error(
                    "kzai_guard: explanations or data bases not stored before an erasure; "
                    "dropped instead"
                )
            archive.forget_subject(pseudonym)
        erased = self.store.erase_subject(checked, pseudonym)
        self.facts.forget(checked)
        self.checked_subjects.pop(checked, None)
        erase(pseudonym)
        return erased

    def erase_reviewer(self, reviewer: str) -> int:
        """Erase a reviewer: from the store's tickets, kill-switch states, escalations and
        overrides (their claims are released), and from the audit log the key sealing the
        records that have no subject (kill-switch changes, overrides), which then read
        ``[erased]``.

        Records about a subject keep the reviewer's pseudonym, sealed under the subject's key.
        Returns how many store rows named the reviewer.
        """
        erase = self._log_eraser()
        reviewer_id = check_subject(reviewer)
        named = self.store.erase_reviewer(reviewer_id)
        erase(self.auditor.reviewer_ref(reviewer_id))
        return named

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop background work, flush explanations and the audit trail, close what was opened."""
        if self._closed:
            return
        self._closed = True
        self.facts.stop()
        self.deadlines.stop()
        self.explanations.close()
        self.data_bases.close()
        self.disparity.close()
        self.sink.close()
        if self._owned_store:
            self.store.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def _log_eraser(self) -> Callable[[str], None]:
        """The audit log's erasure of one key owner; raises for a sink that seals nothing."""
        erase: Callable[[str], None] | None = getattr(self.sink, "erase_subject", None)
        if erase is None:
            raise ConfigurationError(
                "this guard's audit sink does not seal personal fields; erasure needs the "
                "signed audit log (audit='DIRECTORY')"
            )
        return erase

    def _check(self, policies: Sequence[DecisionPolicy]) -> dict[str, DecisionPolicy]:
        if not policies:
            raise ConfigurationError("a guard needs at least one DecisionPolicy")
        by_name: dict[str, DecisionPolicy] = {}
        for policy in policies:
            if not isinstance(policy, DecisionPolicy):
                raise ConfigurationError(
                    f"policies must be DecisionPolicy objects, got {type(policy).__name__}"
                )
            if policy.name in by_name:
                raise ConfigurationError(f"two policies are called {policy.name!r}; rename one")
            check_policy(policy, self.profile)
            check_explanation_sources(policy, self.settings.contact)
            by_name[policy.name] = policy
        return by_name


def _open_audit_log(
    directory: str | Path, durability: Literal["async", "sync"], signer: Any, witnesses: Any
) -> AuditSink:
    from kzai_guard.audit.log import DEMO_KEY_NAME, AuditLog

    if signer is None or getattr(signer.public_key, "name", None) == DEMO_KEY_NAME:
        _log.warning(DEMO_KEY_WARNING, directory)

    sink: AuditSink = AuditLog.open(
        directory, durability=durability, signer=signer, witnesses=witnesses
    )
    return sink


def _describe(where: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
    )
    return f"{where}: {problems}"


_utc_now: Callable[[], datetime] = partial(datetime.now, UTC)
