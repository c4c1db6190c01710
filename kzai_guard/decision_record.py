"""What a decision leaves behind: its explanation, its audit record, its response headers.

:class:`~kzai_guard.gate.Gate` decides (facts, verdict, refusal); a :class:`DecisionRecorder`,
made once per gate, carries the outcome out. Every audit record of a decision is built in
:meth:`DecisionRecorder.record`, and nowhere else:

- :meth:`DecisionRecorder.finish`, after the decision function returned: checks the
  explanation (a significant decision without the explanation the law needs is withheld,
  ``decision.withheld``, in enforce mode), hands its JSON to the explanation archive, writes the
  record with the explanation's digest and sets the response headers;
- :meth:`DecisionRecorder.failed`, after it raised: ``decision.failed``, naming the exception's
  type only;
- :meth:`DecisionRecorder.record`, for the gate's refusals too.

Both ``finish`` and ``failed`` first put back the explanation the context held when the
decision began (:func:`restore_outer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from time import perf_counter_ns, time_ns
from typing import TYPE_CHECKING

from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.context import DecisionContext
from kzai_guard.core import problems
from kzai_guard.core.data_basis import BasisValue, declared_inputs
from kzai_guard.core.explanation import (
    Explanation,
    ExplanationDefaults,
    explanation_json,
    missing_fields,
)
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.review import Reviewer
from kzai_guard.core.verdict import Obligation, Verdict
from kzai_guard.core.vocabulary import Mode, Significance
from kzai_guard.data_bases import keep
from kzai_guard.digest import sha256_hex
from kzai_guard.errors import AuditUnavailable, ExplanationMissing
from kzai_guard.explanations import PendingExplanation, released_when_stored
from kzai_guard.http.disclosure import disclosure_header

if TYPE_CHECKING:
    from kzai_guard.gate import Decision
    from kzai_guard.guard import Guard

__all__ = ["DecisionRecorder", "restore_outer"]

_log = logging.getLogger("kzai_guard")
_LINK_SUFFIX = b'/explanation>; rel="explanation"'


class DecisionRecorder:
    """Writes the records, explanations and headers of one policy's decisions."""

    __slots__ = (
        "_audit_fields",
        "_check_fields",
        "_data_bases",
        "_disclosure_automated",
        "_disclosure_human",
        "_explanations",
        "_link_prefix",
        "_needs_explanation",
        "_now",
        "_observe",
        "_reviewer_ref",
        "_telemetry",
        "_withhold_without_explanation",
        "_write_draft",
        "basis_declared",
        "defaults",
        "digest",
        "fail_closed",
        "model_label",
        "name",
        "sink",
    )

    def __init__(self, guard: Guard, policy: DecisionPolicy, digest: str) -> None:
        self.name = policy.name
        self.digest = digest
        """The policy's digest, as every record of its decisions names it."""
        enforce = policy.mode is Mode.ENFORCE
        significant = policy.significance.is_significant
        self.model_label = policy.model.label if policy.model else None
        how_to_object = guard.settings.how_to_object
        self.defaults = ExplanationDefaults(
            how_to_object=how_to_object.replace("{prefix}", guard.settings.routes_prefix)
            if how_to_object
            else None,
            human_contact=guard.settings.human_contact,
            contact=guard.settings.contact,
            model=policy.model,
        )
        """What completes the explanations of this policy's decisions when they are read."""
        self.fail_closed = enforce and (significant or not policy.audit_fail_open)
        """Whether a decision is refused while the audit trail cannot record it."""
        self.sink = guard.auditor.sink
        self._disclosure_automated = disclosure_header(policy.model, human_reviewed=False)
        self._disclosure_human = disclosure_header(policy.model, human_reviewed=True)
        self._link_prefix = f"<{guard.settings.routes_prefix}/".encode()
        self._withhold_without_explanation = enforce and significant
        self._explanations = guard.explanations
        self._telemetry = guard.telemetry
        # With every completing field defaulted, no explanation can lack one: skip the check.
        self._check_fields = not self.defaults.complete
        self._audit_fields = (
            policy.purpose,
            guard.profile.value,
            policy.mode.value,
            policy.significance.value,
            policy.autonomy.value,
        )
        self._needs_explanation = policy.significance is not Significance.NONE
        self._reviewer_ref = guard.auditor.reviewer_ref
        self._observe = guard.disparity.observer(policy)
        self.basis_declared = declared_inputs(policy.data_basis) if policy.data_basis else None
        """The policy's declared data basis by input name; ``None`` when it declares none."""
        self._data_bases = guard.data_bases
        self._now = guard.now
        self._write_draft: Callable[[_Draft], Future[None] | None] | None = getattr(
            self.sink, "write_draft", None
        )
        """The sink's ``write_draft`` where it has one: the record is then built off this
        thread (:class:`_Draft`)."""

    def finish(self, decision: Decision) -> Future[None] | None:
        """After the function returned: explanation, audit record, response headers.

        Returns the future the response waits for (``durability="sync"``), or ``None``.
        Raises :class:`~kzai_guard.errors.ExplanationMissing` when the decision is withheld.
        """
        context = decision.context
        explanation = context.explanation
        explanation_error = context.explanation_error
        basis = context.data_basis
        restore_outer(decision)
        digest: str | None = None
        withheld: str | None = None
        stored: Future[None] | None = None
        pending: _Draft | None = None
        if explanation is not None:
            missing: Sequence[str] = (
                missing_fields(explanation, self.defaults) if self._check_fields else ()
            )
            if self._needs_explanation and not explanation.factors:
                missing = (*missing, "factors")
            if missing:
                withheld = "explanation lacks " + ", ".join(missing)
            elif decision.subject_ref is not None and decision.at is not None:
                # begin() sets the pseudonym and the time together, for every named subject;
                # the JSON and its digest are made off this thread, by the draft
                pending = _Draft(self, decision, explanation)
                stored = self._explanations.put(pending)
            else:
                raw = explanation_json(explanation)
                digest = sha256_hex(raw)
        elif self._owes_explanation(decision.verdict):
            withheld = explanation_error or "no explanation was given"
        if withheld is not None and self._withhold_without_explanation:
            self.record(decision, EventKind.DECISION_WITHHELD, detail=withheld)
            invalid = explanation_error is not None or explanation is not None
            raise ExplanationMissing(
                problems.EXPLANATION_INVALID if invalid else problems.EXPLANATION_MISSING,
                f"The decision was made but withheld: {withheld}. The operator has been told.",
                decision_id=decision.id,
            )
        if pending is not None and (self.basis_declared is not None or self._write_draft is None):
            # these two build the record here, so the explanation's JSON is made here too
            stored_now = pending.stored()
            if stored_now is None:
                withheld = _UNWRITABLE if withheld is None else f"{withheld}; {_UNWRITABLE}"
            else:
                digest = stored_now.digest
        if self.basis_declared is not None:
            future = self._record_with_basis(decision, basis, digest, withheld)
        elif self._write_draft is not None:
            future = self._draft(decision, pending, digest, withheld)
        else:
            future = self.record(decision, EventKind.DECISION, None, digest, withheld)
        if self._observe is not None:  # disparity monitoring: queued, counted off this thread
            self._observe(decision)
        decision_id = decision.id.encode()
        disclosure = (
            b"ai-disclosure",
            self._disclosure_human if decision.reviewer else self._disclosure_automated,
        )
        context.response_headers = (
            [disclosure, (b"ai-decision-id", decision_id)]
            if digest is None and pending is None
            else [
                disclosure,
                (b"ai-decision-id", decision_id),
                (b"link", self._link_prefix + decision_id + _LINK_SUFFIX),
            ]
        )
        if stored is not None:  # durability "sync": released once the explanation is stored
            return released_when_stored(stored, future, partial(_unlink, context))
        return future

    def _record_with_basis(
        self,
        decision: Decision,
        basis: dict[str, BasisValue] | None,
        digest: str | None,
        withheld: str | None,
    ) -> Future[None] | None:
        """Keep the data the decision rested on and record the decision with its digest; a
        declared input left unreported is named in ``detail``. With durability "sync" the
        returned future waits for the values to be stored too."""
        if decision.subject_ref is None:
            return self.record(decision, EventKind.DECISION, None, digest, withheld)
        kept = keep(
            self.basis_declared or {},
            basis,
            decision_id=decision.id,
            subject_ref=decision.subject_ref,
            policy=self.name,
            at=decision.at or self._now(),
        )
        if kept.missing:
            finding = "data basis lacks " + ", ".join(kept.missing)
            withheld = finding if withheld is None else f"{withheld}; {finding}"
        stored = self._data_bases.put(kept)
        future = self.record(decision, EventKind.DECISION, None, digest, withheld, kept.digest)
        if stored is None:
            return future
        return released_when_stored(stored, future, _keep_link)

    def failed(self, decision: Decision, error: BaseException) -> None:
        """After the function raised: record that it failed, naming the exception's type.

        Nothing of the exception's message is written (it may hold anything, personal data
        included), nor any explanation the function gave before it raised. The caller raises
        ``error`` itself, unchanged: a trail that cannot record the failure is logged, never
        put in its place.
        """
        restore_outer(decision)
        kind = type(error)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else (f"{kind.__module__}.{kind.__qualname__}")
        )
        try:
            self.record(decision, EventKind.DECISION_FAILED, detail=f"raised {name}")
        except AuditUnavailable:
            _log.error(
                "kzai_guard: audit trail unavailable; failure of decision %s not recorded",
                decision.id,
            )

    def record(
        self,
        decision: Decision,
        kind: EventKind,
        review_id: str | None = None,
        explanation_digest: str | None = None,
        detail: str | None = None,
        data_basis_digest: str | None = None,
    ) -> Future[None] | None:
        """Write the audit record of ``decision`` (and its telemetry).

        Returns the sink's future (``durability="sync"``) or ``None``. Raises
        :class:`~kzai_guard.errors.AuditUnavailable` when the sink refuses it and the policy
        fails closed; otherwise a refused record is logged.
        """
        verdict = decision.verdict
        latency_us = (perf_counter_ns() - decision.started_ns) // 1000
        trace_id = self._telemetry.decision(
            self.name, verdict.outcome, verdict.reason, decision.id, latency_us
        )
        record = self.audit_record(
            decision.id,
            time_ns() // 1000,
            kind,
            decision.subject_ref,
            verdict,
            decision.reviewer,
            review_id,
            explanation_digest,
            trace_id,
            latency_us,
            detail,
            data_basis_digest,
        )
        try:
            return self.sink.write(record)
        except AuditUnavailable:
            if self.fail_closed:
                raise
            _log.error("kzai_guard: audit trail unavailable; decision %s not recorded", decision.id)
            return None

    def _draft(
        self,
        decision: Decision,
        draft: _Draft | None,
        digest: str | None,
        withheld: str | None,
    ) -> Future[None] | None:
        """Hand the sink the decision's record to build off this thread (:class:`_Draft`)."""
        verdict = decision.verdict
        latency_us = (perf_counter_ns() - decision.started_ns) // 1000
        if draft is None:
            draft = _Draft(self, decision, None)
            draft.digest = digest
        draft.time_us = time_ns() // 1000
        draft.latency_us = latency_us
        draft.withheld = withheld
        draft.trace_id = self._telemetry.decision(
            self.name, verdict.outcome, verdict.reason, decision.id, latency_us
        )
        try:
            return self._write_draft(draft)  # type: ignore[misc]
        except AuditUnavailable:
            if self.fail_closed:
                raise
            _log.error("kzai_guard: audit trail unavailable; decision %s not recorded", decision.id)
            return None

    def audit_record(
        self,
        decision_id: str,
        time_us: int,
        kind: EventKind,
        subject_ref: str | None,
        verdict: Verdict,
        reviewer: Reviewer | None,
        review_id: str | None,
        explanation_digest: str | None,
        trace_id: str | None,
        latency_us: int,
        detail: str | None,
        data_basis_digest: str | None,
    ) -> AuditRecord:
        """The audit record of one of this policy's decisions."""
        purpose, profile, mode, significance, autonomy = self._audit_fields
        return AuditRecord(  # positional, in the order of AuditRecord's fields
            decision_id,
            time_us,
            kind,
            self.name,
            self.digest,
            subject_ref,
            purpose,
            profile,
            mode,
            significance,
            autonomy,
            verdict.basis,
            verdict.outcome,
            verdict.reason,
            None if reviewer is None else self._reviewer_ref(reviewer.id),
            review_id,
            explanation_digest,
            self.model_label,
            trace_id,
            latency_us,
            detail,
            data_basis_digest,
        )

    def _owes_explanation(self, verdict: Verdict) -> bool:
        """A decision that runs (allowed, or let through in monitor mode) owes an explanation
        whenever its significance does."""
        return Obligation.EXPLANATION in verdict.obligations or (
            not verdict.allowed and self._needs_explanation
        )


class _Draft(PendingExplanation):
    """A decision's audit record as the request thread hands it over, and its explanation
    (a :class:`~kzai_guard.explanations.PendingExplanation`, ``explanation`` ``None`` where
    there is none to keep): the sink's writer builds the record
    (:class:`~kzai_guard.audit.sink.RecordDraft`), the explanation's digest included. Holds
    what the record needs, not the request."""

    __slots__ = (
        "digest",
        "latency_us",
        "recorder",
        "reviewer",
        "time_us",
        "trace_id",
        "verdict",
        "withheld",
    )
    digest: str | None
    latency_us: int
    time_us: int
    trace_id: str | None
    withheld: str | None

    def __init__(
        self, recorder: DecisionRecorder, decision: Decision, explanation: Explanation | None
    ) -> None:
        # the explanation's part, set here rather than by a call to its __init__
        self.decision_id = decision.id
        self.subject_ref = decision.subject_ref  # type: ignore[assignment]
        self.policy = recorder.name
        self.created_at = decision.at  # type: ignore[assignment]
        self.explanation = explanation
        self._stored = False
        self.recorder = recorder
        self.verdict = decision.verdict
        self.reviewer = decision.reviewer
        self.digest = None
        # time_us, latency_us, trace_id and withheld: set as the record is handed over

    def build(self) -> AuditRecord:
        """The record; an explanation whose JSON cannot be written is named in ``detail``."""
        digest, detail = self.digest, self.withheld
        if self.explanation is not None:
            stored = self.stored()
            if stored is None:
                detail = _UNWRITABLE if detail is None else f"{detail}; {_UNWRITABLE}"
            else:
                digest = stored.digest
        return self.recorder.audit_record(
            self.decision_id,
            self.time_us,
            EventKind.DECISION,
            self.subject_ref,
            self.verdict,
            self.reviewer,
            None,
            digest,
            self.trace_id,
            self.latency_us,
            detail,
            None,
        )


_UNWRITABLE = "explanation could not be written as JSON"
_NO_OUTER = (None, None, None, None)


def restore_outer(decision: Decision) -> None:
    """Put back the explanation and data basis the context held when ``decision`` began."""
    context = decision.context
    (
        context.explanation,
        context.explanation_error,
        context.data_basis,
        context.basis_declared,
    ) = decision.outer or _NO_OUTER


def _keep_link() -> None:
    """A data basis the store did not take yet changes nothing in the response: this process
    serves it until the store has it."""


def _unlink(context: DecisionContext) -> None:
    """Take the explanation's ``Link`` out of the response: the store did not take it."""
    context.response_headers = [h for h in context.response_headers or () if h[0] != b"link"]
