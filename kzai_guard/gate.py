"""The gate of one decision type: gather the facts, evaluate, carry the verdict out.

Everything that depends only on the policy is computed once, in :class:`Gate.__init__`; that
includes the verdict for each of the 128 combinations of facts, so that a decision looks its
verdict up instead of evaluating the rules again. A decision runs in three steps, the same for
HTTP, sync, async and batch callers:

1. :meth:`Gate.begin` (no I/O unless a subject is not cached): resolve the subject, gather facts,
   evaluate. Returns a :class:`Decision`.
2. If the verdict refuses (in enforce mode; a suspended decision type in monitor mode too),
   :meth:`Gate.refuse` records it, opens a review ticket where routed, and raises
   :class:`~kzai_guard.errors.DecisionBlocked` or
   :class:`~kzai_guard.errors.HumanReviewRequired`; the decision function never runs. Nor does
   it while the audit trail cannot record it (:meth:`Gate.audit_unavailable`, fail closed).
   A significant decision is refused in step 1 (``facts-unavailable``) while the store's facts
   are stale (not confirmed within the guard's ``stale_after``) or cannot be read.
3. Otherwise the function runs and :attr:`Gate.finish` checks the explanation, queues it,
   writes the audit record and sets the response headers. If the function raises instead,
   :attr:`Gate.failed` records that (``decision.failed``, the exception's type only) and the
   exception goes on to the caller unchanged. Both are the methods of the gate's
   :class:`~kzai_guard.decision_record.DecisionRecorder`, where every record of a decision is
   built.

Every decision writes exactly one decision record, with its own explanation: :meth:`Gate.begin`
sets the context's explanation aside, so that what the function explains belongs to this
decision alone, and :attr:`Gate.finish` (or :attr:`Gate.failed`) puts back what was there, so
that a decision made inside another one's function leaves the outer explanation alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from itertools import product
from time import monotonic, perf_counter_ns
from typing import TYPE_CHECKING, NoReturn

from kzai_guard.audit.record import EventKind
from kzai_guard.context import DecisionContext
from kzai_guard.core import problems
from kzai_guard.core.data_basis import BasisInput, BasisValue
from kzai_guard.core.explanation import (
    Explanation,
)
from kzai_guard.core.facts import Facts
from kzai_guard.core.freshness import facts_trusted
from kzai_guard.core.policy import DecisionPolicy, policy_digest
from kzai_guard.core.problems import ProblemType
from kzai_guard.core.profiles import Profile
from kzai_guard.core.review import Reviewer
from kzai_guard.core.rules import evaluate
from kzai_guard.core.subject import check_subject
from kzai_guard.core.verdict import Outcome, Reason, Verdict, verdict
from kzai_guard.core.vocabulary import Mode
from kzai_guard.decision_record import DecisionRecorder, restore_outer
from kzai_guard.errors import (
    AuditUnavailable,
    DecisionBlocked,
    HumanReviewRequired,
    StoreError,
)
from kzai_guard.fact_cache import SubjectState
from kzai_guard.http.problem import as_sentence
from kzai_guard.http.structured import parse_boolean
from kzai_guard.ids import new_id
from kzai_guard.reviewers import needs_user
from kzai_guard.subjects import UnusableSubject

if TYPE_CHECKING:
    from kzai_guard.guard import Guard

__all__ = ["DURABLE_WAIT_S", "Decision", "Gate"]

DURABLE_WAIT_S = 5.0
"""How long a decision waits for its record (and explanation) to be durable (``durability
"sync"``) before it is refused with 503 ``audit-unavailable`` instead of waiting on a store or
log that has gone silent."""

_log = logging.getLogger("kzai_guard")
_SUBJECT_REFS_LIMIT = 65_536
_NO_FACTS = SubjectState({}, False, frozenset())
_FACTS_DETAIL = (
    "The facts this decision rests on (consents, objections, suspensions) cannot be read "
    "right now, so it is not made. Try again later."
)
_REFUSAL_PROBLEM: dict[Reason, ProblemType] = {
    Reason.SUSPENDED: problems.SUSPENDED,
    Reason.NO_LEGAL_BASIS: problems.NO_LEGAL_BASIS,
    Reason.EMOTION_CONSENT_REQUIRED: problems.EMOTION_CONSENT_REQUIRED,
}
_REFUSAL_DETAIL: dict[Reason, str] = {
    Reason.SUSPENDED: "Decisions of this type are suspended by the operator; a human can help.",
    Reason.NO_LEGAL_BASIS: (
        "This decision would be made solely by AI, and there is no consent for its purpose "
        "and no law that provides for it. Give consent, or ask for a human decision."
    ),
    Reason.EMOTION_CONSENT_REQUIRED: "Emotion recognition needs your consent first.",
}
_ROUTE_DETAIL: dict[Reason, str] = {
    Reason.OBJECTION: "You objected to automated decisions, so a person will decide.",
    Reason.VULNERABLE_SUBJECT: "A person will take this decision.",
    Reason.HUMAN_REQUIRED: "This decision is always taken by a person.",
    Reason.NO_LEGAL_BASIS: (
        "There is no consent or legal basis for an automated decision, so a person will decide."
    ),
    Reason.DISPARITY: (
        "The outcomes of these decisions differ between groups of people more than allowed, "
        "so a person will decide until this is checked."
    ),
}


@dataclass(slots=True)
class Decision:
    """One decision in flight."""

    id: str
    subject: str | None
    verdict: Verdict
    reviewer: Reviewer | None
    started_ns: int
    context: DecisionContext
    subject_ref: str | None = None
    """The subject's pseudonym, as everything outside the store names it."""
    at: datetime | None = None
    """The guard's time when the facts were judged; stamps what the decision stores."""
    outer: (
        tuple[
            Explanation | None,
            str | None,
            dict[str, BasisValue] | None,
            Mapping[str, BasisInput] | None,
        ]
        | None
    ) = None
    """The context's explanation (and its error) and data basis (values and declaration) when
    the decision began, put back when it ends; ``None`` when there was none."""

    @property
    def refused(self) -> bool:
        """True when the verdict keeps the AI from deciding."""
        return self.verdict.outcome is not Outcome.ALLOW


class Gate:
    """Runs one policy's decisions for one guard."""

    __slots__ = (
        "_ask_always",
        "_basis_declared",
        "_cached",
        "_facts",
        "_facts_key",
        "_guard",
        "_now",
        "_objection_header",
        "_pseudonym",
        "_resolve_reviewer",
        "_resolve_subject",
        "_route_vulnerable",
        "_significant",
        "_stale_after",
        "_state",
        "_subject_refs",
        "_verdicts",
        "_vulnerability",
        "defaults",
        "digest",
        "durable_wait",
        "enforce",
        "fail_closed",
        "failed",
        "finish",
        "model_label",
        "name",
        "policy",
        "record",
        "sink",
    )

    def __init__(self, guard: Guard, policy: DecisionPolicy) -> None:
        self._guard = guard
        self.policy = policy
        self.name = policy.name
        self.digest = policy_digest(policy)
        self.enforce = policy.mode is Mode.ENFORCE
        recorder = DecisionRecorder(guard, policy, self.digest)
        self.model_label = recorder.model_label
        self.defaults = recorder.defaults
        self.fail_closed = recorder.fail_closed
        """Whether a decision is refused while the audit trail cannot record it."""
        self.sink = recorder.sink
        self.finish = recorder.finish
        """Step 3, after the function returned: :meth:`DecisionRecorder.finish`."""
        self.failed = recorder.failed
        """Step 3, after the function raised: :meth:`DecisionRecorder.failed`."""
        self.record = recorder.record
        """Writes one record of a decision: :meth:`DecisionRecorder.record`."""
        self._significant = policy.significance.is_significant
        self._stale_after = guard.settings.stale_after
        self._verdicts = verdict_table(policy, guard.profile)
        self.durable_wait = DURABLE_WAIT_S
        """Seconds a decision waits for its record to be durable (:data:`DURABLE_WAIT_S`)."""
        self._objection_header = guard.settings.objection_header
        self._route_vulnerable = (
            guard.vulnerability is not None
            and policy.route_vulnerable
            and policy.significance.is_significant
        )
        # What every decision calls, bound once.
        self._facts = guard.facts
        self._state = guard.facts.state
        self._cached = guard.facts.cached_state
        self._now = guard.now
        self._pseudonym = guard.auditor.pseudonym
        self._resolve_subject = guard.subject_resolver
        self._resolve_reviewer = guard.reviewer_resolver
        self._ask_always = not needs_user(guard.reviewer_resolver)
        self._vulnerability = guard.vulnerability
        self._facts_key = (policy.purpose, policy.notice_version, policy.name)
        self._subject_refs = guard.checked_subjects
        self._basis_declared = recorder.basis_declared

    # -- step 1 -----------------------------------------------------------------------------

    def begin(self, context: DecisionContext | None) -> Decision:
        """Gather the facts and evaluate. Raises on a request that names no usable subject."""
        started = perf_counter_ns()
        if context is None:
            raise RuntimeError(
                f"decision {self.name!r} ran outside a decision context: install the guard "
                "(guard.install(app)) or wrap the call in kzai_guard.decision_context(...)"
            )
        decision_id = context.decision_id = new_id()
        scope = context.scope
        subject_ref: str | None = None
        try:
            subject = context.subject
            if subject is None and scope is not None:
                subject = self._resolve_subject(scope)
        except UnusableSubject as exc:
            self._bad_subject(
                decision_id, started, context, Reason.SUBJECT_INVALID, as_sentence(str(exc))
            )
            subject = None
        else:
            if subject is not None:
                subject_ref = self._subject_refs.get(subject)
            if subject_ref is None:
                subject, subject_ref = self._first_sight(decision_id, started, context, subject)
        if scope is None:
            reviewer = context.reviewer
            signal = context.objection
        else:
            # the default resolver reads scope["user"] only: no user, no call
            reviewer = (
                self._resolve_reviewer(scope) if self._ask_always or "user" in scope else None
            )
            signal = False
            wanted = self._objection_header
            for key, value in scope["headers"]:
                if key == wanted:
                    signal = parse_boolean(value) is True
                    break
        consent = objection = vulnerable = False
        now = None
        significant = self._significant
        trusted = facts_trusted(self._facts.read_at, monotonic(), self._stale_after)
        if significant and not trusted:
            self._facts_unread(decision_id, subject, subject_ref, reviewer, started, context)
        if subject is not None:
            now = self._now()
            try:
                # Stale facts: the store is likely out of reach, so a decision that is not
                # significant does not wait for it and judges on what is cached.
                state = (
                    self._cached(subject) or self._state(subject)
                    if trusted
                    else self._cached(subject, _NO_FACTS)
                )
            except StoreError:
                if significant:
                    self._facts_unread(
                        decision_id, subject, subject_ref, reviewer, started, context
                    )
                # Not significant: the verdict needs no consent or objection, so judge as if
                # there were none (emotion recognition is refused, never allowed).
                state = _NO_FACTS
            # the state keeps, per policy, the span of time its last answer holds for: inside
            # it, the answer is taken as it is (SubjectState.facts_for)
            facts = state.spans.get(self._facts_key)
            if facts is None or not facts[2] <= now < facts[3]:
                facts = state.facts_for(*self._facts_key, now)
            consent = facts[0]
            objection = facts[1]
            if self._route_vulnerable and reviewer is None:
                vulnerable = bool(self._vulnerability(subject))  # type: ignore[misc]
        outer = None
        if (
            context.explanation is not None
            or context.explanation_error is not None
            or context.basis_declared is not None
        ):
            outer = (
                context.explanation,
                context.explanation_error,
                context.data_basis,
                context.basis_declared,
            )
            context.explanation = context.explanation_error = context.data_basis = None
        context.basis_declared = self._basis_declared
        return Decision(
            decision_id,
            subject,
            self._verdicts[
                (self.name in self._facts.suspended)
                | (reviewer is not None) << 1
                | consent << 2
                | objection << 3
                | signal << 4
                | vulnerable << 5
                | (self.name in self._facts.routed) << 6
            ],
            reviewer,
            started,
            context,
            subject_ref,
            now,
            outer,
        )

    # -- step 2 -----------------------------------------------------------------------------

    def refuse(self, decision: Decision) -> None:
        """Carry out a refusing verdict: record it, open a ticket if routed, raise."""
        restore_outer(decision)
        verdict = decision.verdict
        if verdict.outcome is Outcome.ROUTE and decision.subject is not None:
            try:
                ticket = self._guard.reviews.open(
                    decision_id=decision.id,
                    policy=self.name,
                    subject=decision.subject,
                    reason=verdict.reason.value,
                    deadline_days=self.policy.review_deadline_days,
                )
            except StoreError:
                decision.verdict = _UNAVAILABLE
                self._facts_unavailable(decision)
            self.record(decision, EventKind.DECISION, review_id=ticket.id)
            self._guard.auditor.event(
                EventKind.REVIEW_OPENED,
                subject=decision.subject,
                policy=self.name,
                review_id=ticket.id,
                detail=verdict.reason.value,
            )
            raise HumanReviewRequired(
                problems.HUMAN_REVIEW,
                _ROUTE_DETAIL.get(verdict.reason, "A person will take this decision."),
                decision_id=decision.id,
                ticket=ticket,
            )
        self.record(decision, EventKind.DECISION)
        raise DecisionBlocked(
            _REFUSAL_PROBLEM[verdict.reason],
            _REFUSAL_DETAIL[verdict.reason],
            decision_id=decision.id,
        )

    def _facts_unread(
        self,
        decision_id: str,
        subject: str | None,
        subject_ref: str | None,
        reviewer: Reviewer | None,
        started: int,
        context: DecisionContext,
    ) -> NoReturn:
        unread = Decision(decision_id, subject, _UNAVAILABLE, reviewer, started, context)
        unread.subject_ref = subject_ref
        self._facts_unavailable(unread)

    def _facts_unavailable(self, decision: Decision) -> NoReturn:
        """Record and refuse a decision whose facts are stale or cannot be read (step 1)."""
        self.record(decision, EventKind.DECISION)
        raise DecisionBlocked(problems.FACTS_UNAVAILABLE, _FACTS_DETAIL, decision_id=decision.id)

    def audit_unavailable(self, decision: Decision) -> NoReturn:
        """Fail closed: raise, because the audit trail cannot record ``decision``.

        Callers check first: an enforced decision (:attr:`fail_closed`) does not run while
        :attr:`sink` is unhealthy. Only a non-significant policy with ``audit_fail_open`` runs
        regardless.
        """
        restore_outer(decision)
        raise AuditUnavailable(f"decision {decision.id} refused: the audit trail cannot record it")

    def not_durable(self, decision: Decision, durable: Future[None]) -> NoReturn:
        """Refuse a decision whose record was not ``durable`` within :attr:`durable_wait`.

        The record is withdrawn (``durable`` cancelled) unless the log's writer has taken it
        already: then it reaches the trail if the log answers again, or fails with its batch.
        The error log names the decision and says which; the response is 503
        ``audit-unavailable``.
        """
        withdrawn = durable.cancel()
        _log.error(
            "kzai_guard: decision %s refused: its audit record was not durable within %.1fs; %s",
            decision.id,
            self.durable_wait,
            "the record is withdrawn unless the log's writer had taken it already"
            if withdrawn
            else "the record was being written and may still reach the trail",
        )
        self.audit_unavailable(decision)

    # -- step 3: carried out by the recorder (kzai_guard.decision_record) ------------------

    # -- helpers ----------------------------------------------------------------------------

    def _first_sight(
        self, decision_id: str, started: int, context: DecisionContext, raw: str | None
    ) -> tuple[str | None, str | None]:
        """Check a subject not seen before and pseudonymise it; an unusable one is recorded
        and refused (enforce mode). Returns the subject and its pseudonym, or two ``None``."""
        if raw is None:
            self._bad_subject(
                decision_id,
                started,
                context,
                Reason.SUBJECT_MISSING,
                "The request does not say whom the decision is about.",
            )
            return None, None
        try:
            subject = check_subject(raw)
        except ValueError as exc:
            self._bad_subject(
                decision_id, started, context, Reason.SUBJECT_INVALID, as_sentence(str(exc))
            )
            return None, None
        subject_ref = self._pseudonym(subject)
        refs = self._subject_refs
        if len(refs) >= _SUBJECT_REFS_LIMIT:
            refs.clear()
        refs[subject] = subject_ref
        return subject, subject_ref

    def _bad_subject(
        self, decision_id: str, started: int, context: DecisionContext, reason: Reason, detail: str
    ) -> None:
        if self.enforce:
            decision = Decision(
                decision_id, None, verdict(Outcome.BLOCK, reason), None, started, context
            )
            self.record(decision, EventKind.DECISION, detail=detail)
            problem = (
                problems.SUBJECT_MISSING
                if reason is Reason.SUBJECT_MISSING
                else problems.SUBJECT_INVALID
            )
            raise DecisionBlocked(problem, detail, decision_id=decision_id)


_UNAVAILABLE = verdict(Outcome.BLOCK, Reason.FACTS_UNAVAILABLE)


def verdict_table(policy: DecisionPolicy, profile: Profile) -> tuple[Verdict, ...]:
    """The verdict for every combination of facts, indexed by a bit mask.

    Bit 0 suspended, 1 reviewer, 2 consent, 3 objection, 4 objection signal, 5 vulnerable,
    6 routed for disparity.
    """
    table = []
    for routed, vulnerable, signal, objection, consent, reviewer, suspended in product(
        (False, True), repeat=7
    ):
        facts = Facts(suspended, reviewer, consent, objection, signal, vulnerable, routed)
        table.append(evaluate(policy, facts, profile))
    return tuple(table)
