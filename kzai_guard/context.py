"""The decision context: what the guard knows about the request a decision is made in.

The middleware opens one per HTTP request; :func:`decision_context` opens one for a batch job or
worker, where the trusted caller states the subject, the reviewer and any objection itself.
Decision functions call :func:`explain` to attach their explanation and :func:`data_basis` to
report the data it rests on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import ValidationError

from kzai_guard.core.data_basis import BasisInput, BasisValue, reported_values
from kzai_guard.core.explanation import Explanation
from kzai_guard.core.review import Reviewer
from kzai_guard.errors import InvalidDataBasis

__all__ = [
    "DecisionContext",
    "current_context",
    "data_basis",
    "decision_context",
    "explain",
    "mark_outcome",
]


class DecisionContext:
    """Per-request (or per-job) state; never shared between requests."""

    __slots__ = (
        "basis_declared",
        "data_basis",
        "decision_id",
        "explanation",
        "explanation_error",
        "favourable",
        "objection",
        "response_headers",
        "reviewer",
        "scope",
        "subject",
    )

    def __init__(
        self,
        scope: Mapping[str, Any] | None = None,
        *,
        subject: str | None = None,
        reviewer: Reviewer | None = None,
        objection: bool = False,
    ) -> None:
        self.scope = scope
        self.subject = subject
        self.reviewer = reviewer
        self.objection = objection
        self.decision_id: str | None = None
        self.explanation: Explanation | None = None
        self.explanation_error: str | None = None
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.favourable: bool | None = None
        """Whether the decision's outcome was favourable to the person (:func:`mark_outcome`)."""
        self.data_basis: dict[str, BasisValue] | None = None
        """The values :func:`data_basis` reported for the decision being made."""
        self.basis_declared: Mapping[str, BasisInput] | None = None
        """The inputs the running decision's policy declares (set by the guard)."""


_current: ContextVar[DecisionContext | None] = ContextVar("kzai_guard_decision", default=None)


def current_context() -> DecisionContext | None:
    """The decision context of the running request or job, if any."""
    return _current.get()


@contextmanager
def decision_context(
    subject: str, *, reviewer: Reviewer | None = None, objection: bool = False
) -> Iterator[DecisionContext]:
    """Make decisions outside HTTP (batch jobs, workers) about ``subject``.

    The caller is trusted code: ``reviewer`` is the human decision-maker it authenticated,
    ``objection`` an objection it received through its own channel. Example::

        with kg.decision_context("A-1"):
            score_applicant(application)   # a @guard.decision function
    """
    context = DecisionContext(None, subject=subject, reviewer=reviewer, objection=objection)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def explain(explanation: Explanation | Mapping[str, Any]) -> None:
    """Attach the explanation of the decision being made.

    Call it inside a ``@guard.decision`` function. A mapping is validated as an
    :class:`Explanation`; an invalid one withholds a significant decision (``explanation-invalid``).
    """
    context = _current.get()
    if context is None:
        raise RuntimeError(
            "kzai_guard.explain() was called outside a decision: call it inside a "
            "@guard.decision function (and install the guard's middleware for HTTP)"
        )
    if isinstance(explanation, Explanation):
        context.explanation = explanation
        return
    try:
        context.explanation = Explanation.model_validate(explanation)
    except ValidationError as exc:
        context.explanation = None
        context.explanation_error = f"{exc.error_count()} invalid field(s): " + "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )


def data_basis(values: Mapping[str, Any]) -> None:
    """Report the data the decision being made rests on (KZ-AI 16(1)(5)).

    Call it inside a ``@guard.decision`` function whose policy declares ``data_basis``; names
    are the declared inputs' names, values JSON scalars. Several calls add up (a later value
    for the same name replaces the earlier one). The values are kept for the person, who gets
    them with the policy's redaction applied; their digest goes into the audit record.
    Raises :class:`~kzai_guard.errors.InvalidDataBasis` for an input the policy does not
    declare or a value that is not a JSON scalar. Example::

        kg.data_basis({"monthly_income": 600_000, "risk_score": 0.82})
    """
    context = _current.get()
    if context is None or context.decision_id is None:
        raise RuntimeError(
            "kzai_guard.data_basis() was called outside a decision: call it inside a "
            "@guard.decision function (and install the guard's middleware for HTTP)"
        )
    declared = context.basis_declared
    if declared is None:
        raise InvalidDataBasis(
            "the decision's policy declares no data_basis: declare the inputs it rests on "
            "before reporting their values"
        )
    checked = reported_values(declared, values)
    if context.data_basis is None:
        context.data_basis = checked
    else:
        context.data_basis.update(checked)


def mark_outcome(*, favourable: bool) -> None:
    """Say whether the decision being made came out favourable to the person (a loan granted,
    a claim paid): what disparity monitoring counts (KZ-AI 6). Call it inside a
    ``@guard.decision`` function; a decision that does not call it is not counted."""
    context = _current.get()
    if context is None:
        raise RuntimeError(
            "kzai_guard.mark_outcome() was called outside a decision: call it inside a "
            "@guard.decision function (and install the guard's middleware for HTTP)"
        )
    context.favourable = favourable
