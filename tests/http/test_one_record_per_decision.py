"""Every decision gets exactly one record and its own explanation, also when its function raises.

The HTTP tests run a real Starlette app under the guard's middleware; the property test runs
any sequence of decisions in one context and checks the algebra: one record per decision, each
with the digest of what that decision explained, or withheld, or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.core.explanation import explanation_json
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, LOAN

SUBJECT = "A-1"
SECRET_MESSAGE = "applicant A-1 earns 123456"


class ScoringFailed(Exception):
    """The model's own failure, raised from inside a decision function."""


def explanation_number(n: int) -> kg.Explanation:
    return EXPLANATION.model_copy(update={"consequences": f"Outcome number {n}."})


def decision_records(sink: kg.MemorySink) -> list[kg.AuditRecord]:
    """The records of decisions, whatever their end; consents left out."""
    return [record for record in sink.records if record.kind.startswith("decision")]


def digest_of(explanation: kg.Explanation) -> str:
    return sha256(explanation_json(explanation)).hexdigest()


@pytest.fixture
def guarded() -> Iterator[tuple[kg.Guard, kg.MemorySink]]:
    guard, sink = memory_guard(
        [LOAN], contact="credit@example.kz", subject=kg.from_path_param("applicant_id")
    )
    guard.consents.grant(SUBJECT, "credit-scoring", "v1")
    yield guard, sink
    guard.close()


def app_of(guard: kg.Guard) -> TestClient:
    """Two endpoints: one makes two decisions, the second unexplained; one raises."""

    @guard.decision("loan_approval")
    def explained() -> str:
        kg.explain(explanation_number(1))
        return "first"

    @guard.decision("loan_approval")
    def unexplained() -> str:
        return "second"

    @guard.decision("loan_approval")
    async def raising(request: Request) -> JSONResponse:
        kg.explain(explanation_number(3))
        raise ScoringFailed(SECRET_MESSAGE)

    async def twice(request: Request) -> JSONResponse:
        return JSONResponse({"results": [explained(), unexplained()]})

    app = Starlette(
        routes=[
            Route("/twice/{applicant_id}", twice, methods=["POST"]),
            Route("/raising/{applicant_id}", raising, methods=["POST"]),
        ]
    )
    guard.install(app)
    return TestClient(app, raise_server_exceptions=False)


def test_a_second_decision_in_a_request_does_not_inherit_the_first_ones_explanation(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    response = app_of(guard).post(f"/twice/{SUBJECT}")

    # the second decision owes an explanation it never gave: it is withheld, not passed off
    assert response.status_code == 500
    assert response.json()["type"].endswith("explanation-missing")
    [first] = sink.of_kind(kg.EventKind.DECISION)
    [second] = sink.of_kind(kg.EventKind.DECISION_WITHHELD)
    assert first.explanation_digest == digest_of(explanation_number(1))
    assert second.explanation_digest is None
    assert second.detail == "no explanation was given"
    assert first.id != second.id
    assert guard.explanation(second.id) is None


def test_a_decision_function_that_raises_is_recorded_as_failed_by_type_only(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded
    response = app_of(guard).post(f"/raising/{SUBJECT}")

    assert response.status_code == 500
    [failed] = decision_records(sink)
    assert failed.kind is kg.EventKind.DECISION_FAILED
    assert (failed.verdict, failed.policy) == ("allow", "loan_approval")
    assert failed.detail == f"raised {ScoringFailed.__module__}.ScoringFailed"
    assert failed.explanation_digest is None
    assert SECRET_MESSAGE not in repr(failed.as_dict())
    guard.explanations.flush()
    assert guard.explanation(failed.id) is None


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_exception_reaches_the_caller_unchanged(
    guarded: tuple[kg.Guard, kg.MemorySink], asynchronous: bool
) -> None:
    guard, sink = guarded
    error = ScoringFailed(SECRET_MESSAGE)

    @guard.decision("loan_approval")
    def sync_decide() -> None:
        raise error

    @guard.decision("loan_approval")
    async def async_decide() -> None:
        raise error

    with pytest.raises(ScoringFailed) as caught, kg.decision_context(SUBJECT):
        if asynchronous:
            asyncio.run(async_decide())
        else:
            sync_decide()

    assert caught.value is error
    assert caught.value.args == (SECRET_MESSAGE,)
    [failed] = decision_records(sink)
    assert failed.kind is kg.EventKind.DECISION_FAILED


def test_a_failure_the_trail_cannot_record_still_raises_the_functions_own_exception() -> None:
    sink = kg.MemorySink()
    guard = kg.Guard(
        [LOAN],
        store="memory://",
        audit=sink,
        contact="credit@example.kz",
        subject=kg.from_path_param("applicant_id"),
        pseudonym_key=b"k" * 32,
    )
    guard.consents.grant(SUBJECT, "credit-scoring", "v1")

    @guard.decision("loan_approval")
    def decide() -> None:
        sink.fail = True
        raise ScoringFailed(SECRET_MESSAGE)

    try:
        with pytest.raises(ScoringFailed), kg.decision_context(SUBJECT):
            decide()
    finally:
        guard.close()


def test_a_decision_inside_another_ones_function_leaves_the_outer_explanation_alone(
    guarded: tuple[kg.Guard, kg.MemorySink],
) -> None:
    guard, sink = guarded

    @guard.decision("loan_approval")
    def inner() -> None:
        kg.explain(explanation_number(2))

    @guard.decision("loan_approval")
    def outer() -> None:
        kg.explain(explanation_number(1))
        inner()

    with kg.decision_context(SUBJECT):
        outer()

    inner_record, outer_record = sink.of_kind(kg.EventKind.DECISION)
    assert inner_record.explanation_digest == digest_of(explanation_number(2))
    assert outer_record.explanation_digest == digest_of(explanation_number(1))


# what each decision function of a sequence does: explain (with a number), stay silent, raise
steps = st.lists(
    st.one_of(
        st.integers(0, 1000).map(lambda n: ("explain", n)),
        st.just(("silent", 0)),
        st.integers(0, 1000).map(lambda n: ("explain-then-raise", n)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(steps)
def test_any_sequence_of_decisions_in_one_context_records_each_exactly_once_as_itself(
    sequence: list[tuple[str, int]],
) -> None:
    guard, sink = memory_guard(
        [LOAN], contact="credit@example.kz", subject=kg.from_path_param("applicant_id")
    )
    guard.consents.grant(SUBJECT, "credit-scoring", "v1")

    @guard.decision("loan_approval")
    def decide(step: str, n: int) -> None:
        if step != "silent":
            kg.explain(explanation_number(n))
        if step == "explain-then-raise":
            raise ScoringFailed(str(n))

    try:
        with kg.decision_context(SUBJECT):
            for step, n in sequence:
                with contextlib.suppress(ScoringFailed, kg.ExplanationMissing):
                    decide(step, n)
        records = decision_records(sink)
        assert len(records) == len(sequence)
        assert len({record.id for record in records}) == len(sequence)
        for record, (step, n) in zip(records, sequence, strict=True):
            if step == "explain":
                assert record.kind is kg.EventKind.DECISION
                assert record.explanation_digest == digest_of(explanation_number(n))
            elif step == "silent":
                assert record.kind is kg.EventKind.DECISION_WITHHELD
                assert record.explanation_digest is None
            else:
                assert record.kind is kg.EventKind.DECISION_FAILED
                assert record.explanation_digest is None
    finally:
        guard.close()
