"""``@guard.decision`` outside HTTP: sync and async functions inside ``decision_context``."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import Iterator
from datetime import datetime

import pytest

import kzai_guard as kg
from kzai_guard.stores.base import StoredExplanation
from kzai_guard.testing import memory_guard
from tests.samples import GATEWAY_SUBJECT

LOAN = kg.DecisionPolicy(
    name="loan_approval",
    purpose="credit-scoring",
    domain=kg.Domain.CREDIT,
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.HIGH,
    model=kg.ModelInfo(name="scorer", version="2.1"),
)
LOAN_MONITORED = LOAN.model_copy(update={"name": "loan_shadow", "mode": kg.Mode.MONITOR})
EXPLANATION = kg.Explanation(
    summary={kg.Language.EN: "Approved", kg.Language.RU: "Одобрено"},
    factors=(kg.Factor(name="income", direction=kg.Direction.FAVOURABLE, weight=0.7),),
    ai_role="A model computed the score; no person reviewed it.",
    consequences="The loan is granted on the offered terms.",
)


@pytest.fixture
def guarded() -> Iterator[tuple[kg.Guard, kg.MemorySink]]:
    guard, sink = memory_guard(
        [LOAN, LOAN_MONITORED], contact="credit@example.kz", subject=GATEWAY_SUBJECT
    )
    yield guard, sink
    guard.close()


@pytest.fixture
def guard(guarded: tuple[kg.Guard, kg.MemorySink]) -> kg.Guard:
    return guarded[0]


@pytest.fixture
def sink(guarded: tuple[kg.Guard, kg.MemorySink]) -> kg.MemorySink:
    return guarded[1]


def decisions(sink: kg.MemorySink) -> list[kg.AuditRecord]:
    return sink.of_kind(kg.EventKind.DECISION)


def test_allowed_sync_decision_returns_the_value_and_records_allow(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    def score(amount: int) -> dict[str, object]:
        kg.explain(EXPLANATION)
        return {"approved": True, "amount": amount}

    guard.consents.grant("A-1", "credit-scoring", "v1")
    with kg.decision_context("A-1") as context:
        result = score(500)

    assert result == {"approved": True, "amount": 500}
    [record] = decisions(sink)
    assert (record.id, record.verdict, record.reason, record.basis) == (
        context.decision_id,
        "allow",
        "consent",
        "consent",
    )
    assert record.policy == "loan_approval"
    assert record.explanation_digest is not None


def test_allowed_async_decision_returns_the_value_and_records_allow(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    async def score(amount: int) -> dict[str, object]:
        await asyncio.sleep(0)
        kg.explain(EXPLANATION)
        return {"approved": True, "amount": amount}

    guard.consents.grant("A-2", "credit-scoring", "v1")

    async def run() -> tuple[dict[str, object], str | None]:
        with kg.decision_context("A-2") as context:
            value = await score(700)
        return value, context.decision_id

    result, decision_id = asyncio.run(run())

    assert result == {"approved": True, "amount": 700}
    [record] = decisions(sink)
    assert (record.id, record.verdict, record.reason) == (decision_id, "allow", "consent")


def test_allowed_decision_keeps_its_explanation_retrievable_by_decision_id(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "ok"

    guard.consents.grant("A-3", "credit-scoring", "v1")
    with kg.decision_context("A-3") as context:
        score()

    assert context.decision_id is not None
    stored = guard.explanation(context.decision_id)
    assert isinstance(stored, StoredExplanation)
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert (stored.decision_id, stored.policy, stored.digest) == (
        context.decision_id,
        "loan_approval",
        record.explanation_digest,
    )
    assert stored.subject_ref == guard.auditor.pseudonym("A-3")
    assert json.loads(stored.body) == json.loads(EXPLANATION.model_dump_json())
    assert hashlib.sha256(stored.body).hexdigest() == stored.digest


def test_sync_decision_without_consent_raises_decision_blocked_no_legal_basis(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    ran: list[bool] = []

    @guard.decision("loan_approval")
    def score() -> str:
        ran.append(True)
        return "approved"

    with kg.decision_context("B-1"), pytest.raises(kg.DecisionBlocked) as caught:
        score()

    assert ran == []
    assert caught.value.problem.slug == "no-legal-basis"
    [record] = decisions(sink)
    assert caught.value.decision_id == record.id
    assert (record.verdict, record.reason) == ("block", "no-legal-basis")


def test_async_decision_without_consent_raises_decision_blocked_no_legal_basis(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    async def score() -> str:
        return "approved"

    async def run() -> None:
        with kg.decision_context("B-2"):
            await score()

    with pytest.raises(kg.DecisionBlocked) as caught:
        asyncio.run(run())

    assert caught.value.problem.slug == "no-legal-basis"
    [record] = decisions(sink)
    assert caught.value.decision_id == record.id


def test_objected_sync_decision_raises_human_review_required_with_an_open_ticket(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        return "approved"

    guard.consents.grant("C-1", "credit-scoring", "v1")
    guard.objections.record("C-1")
    with kg.decision_context("C-1"), pytest.raises(kg.HumanReviewRequired) as caught:
        score()

    ticket = caught.value.ticket
    assert caught.value.problem.slug == "human-review"
    assert (ticket.status, ticket.reason, ticket.policy, ticket.subject) == (
        kg.ReviewStatus.OPEN,
        "objection",
        "loan_approval",
        "C-1",
    )
    assert ticket.decision_id == caught.value.decision_id
    assert isinstance(ticket.deadline, datetime)
    assert ticket.deadline > ticket.opened_at
    assert guard.reviews.get(ticket.id) == ticket
    [record] = decisions(sink)
    assert (record.verdict, record.reason, record.review_id) == ("route", "objection", ticket.id)


def test_objected_async_decision_raises_human_review_required_with_an_open_ticket(
    guard: kg.Guard,
) -> None:
    @guard.decision("loan_approval")
    async def score() -> str:
        return "approved"

    guard.objections.record("C-2", "loan_approval")

    async def run() -> None:
        with kg.decision_context("C-2"):
            await score()

    with pytest.raises(kg.HumanReviewRequired) as caught:
        asyncio.run(run())

    assert caught.value.ticket.status is kg.ReviewStatus.OPEN
    assert caught.value.ticket.reason == "objection"
    assert guard.reviews.pending() == [caught.value.ticket]


def test_objection_signalled_by_the_caller_routes_the_decision(guard: kg.Guard) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        return "approved"

    guard.consents.grant("C-3", "credit-scoring", "v1")
    with kg.decision_context("C-3", objection=True), pytest.raises(kg.HumanReviewRequired) as c:
        score()

    assert c.value.ticket.reason == "objection"


def test_explicit_reviewer_allows_the_decision_on_a_human_basis(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    guard.objections.record("D-1")
    with kg.decision_context("D-1", reviewer=kg.Reviewer(id="officer-7")):
        result = score()

    assert result == "approved"
    [record] = decisions(sink)
    assert (record.verdict, record.reason, record.basis, record.reviewer) == (
        "allow",
        "human-decision",
        "human",
        guard.auditor.reviewer_ref("officer-7"),
    )


def test_sync_decision_outside_any_context_raises_runtime_error_naming_the_fix(
    guard: kg.Guard,
) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        return "approved"

    with pytest.raises(RuntimeError) as caught:
        score()

    assert "guard.install" in str(caught.value)
    assert "decision_context" in str(caught.value)


def test_async_decision_outside_any_context_raises_runtime_error_naming_the_fix(
    guard: kg.Guard,
) -> None:
    @guard.decision("loan_approval")
    async def score() -> str:
        return "approved"

    with pytest.raises(RuntimeError) as caught:
        asyncio.run(score())

    assert "guard.install" in str(caught.value)
    assert "decision_context" in str(caught.value)


def test_explain_outside_a_decision_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="outside a decision"):
        kg.explain(EXPLANATION)


def test_enforced_decision_without_explanation_raises_explanation_missing(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        return "approved"

    guard.consents.grant("E-1", "credit-scoring", "v1")
    with kg.decision_context("E-1"), pytest.raises(kg.ExplanationMissing) as caught:
        score()

    assert caught.value.problem.slug == "explanation-missing"
    [withheld] = sink.of_kind(kg.EventKind.DECISION_WITHHELD)
    assert withheld.id == caught.value.decision_id
    assert withheld.detail == "no explanation was given"
    assert decisions(sink) == []


def test_enforced_decision_with_an_invalid_explanation_raises_explanation_invalid(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain({"summary": {}, "ai_role": "", "consequences": "granted"})
        return "approved"

    guard.consents.grant("E-2", "credit-scoring", "v1")
    with kg.decision_context("E-2"), pytest.raises(kg.ExplanationMissing) as caught:
        score()

    assert caught.value.problem.slug == "explanation-invalid"
    [withheld] = sink.of_kind(kg.EventKind.DECISION_WITHHELD)
    assert withheld.detail is not None
    assert withheld.detail.startswith("2 invalid field(s): ")


def test_monitored_decision_without_explanation_passes_and_flags_it(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_shadow")
    def score() -> str:
        return "approved"

    guard.consents.grant("E-3", "credit-scoring", "v1")
    with kg.decision_context("E-3"):
        result = score()

    assert result == "approved"
    [record] = decisions(sink)
    assert (record.verdict, record.mode, record.explanation_digest) == ("allow", "monitor", None)
    assert record.detail == "no explanation was given"


def test_monitored_decision_without_consent_runs_and_records_the_block(
    guard: kg.Guard, sink: kg.MemorySink
) -> None:
    @guard.decision("loan_shadow")
    def score() -> str:
        return "approved"

    with kg.decision_context("E-4"):
        result = score()

    assert result == "approved"
    [record] = decisions(sink)
    assert (record.verdict, record.reason, record.mode) == ("block", "no-legal-basis", "monitor")


def test_sync_decorator_keeps_name_doc_and_signature(guard: kg.Guard) -> None:
    def score(applicant_id: str, amount: int = 100, *, currency: str = "KZT") -> dict[str, int]:
        """Score one loan application."""
        return {}

    wrapped = guard.decision("loan_approval")(score)

    assert wrapped.__name__ == "score"
    assert wrapped.__doc__ == "Score one loan application."
    assert inspect.signature(wrapped) == inspect.signature(score)
    assert wrapped.__wrapped__ is score  # type: ignore[attr-defined]


def test_async_decorator_keeps_name_doc_signature_and_stays_a_coroutine_function(
    guard: kg.Guard,
) -> None:
    async def score(applicant_id: str, amount: int = 100) -> dict[str, int]:
        """Score one loan application, asynchronously."""
        return {}

    wrapped = guard.decision("loan_approval")(score)

    assert wrapped.__name__ == "score"
    assert wrapped.__doc__ == "Score one loan application, asynchronously."
    assert inspect.signature(wrapped) == inspect.signature(score)
    assert inspect.iscoroutinefunction(wrapped)


def test_decorating_with_an_unknown_policy_raises_configuration_error(guard: kg.Guard) -> None:
    with pytest.raises(kg.ConfigurationError, match="'no_such_policy'"):
        guard.decision("no_such_policy")
