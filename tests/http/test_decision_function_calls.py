"""When the decision function runs: never on an enforced refusal, always in monitor mode.

Each test runs one guarded endpoint that counts its calls, on FastAPI and on Starlette.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

LOAN_MONITORED = LOAN.model_copy(update={"name": "loan_shadow", "mode": kg.Mode.MONITOR})
EMOTION = kg.DecisionPolicy(
    name="interview_mood",
    purpose="emotion",
    significance=kg.Significance.NONE,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.HIGH,
    capabilities=frozenset({kg.Capability.EMOTION_RECOGNITION}),
    model=kg.ModelInfo(name="mood", version="1"),
)


@pytest.fixture
def guarded() -> Iterator[tuple[kg.Guard, kg.MemorySink]]:
    guard, sink = memory_guard(
        [LOAN, LOAN_MONITORED, EMOTION], contact="credit@example.kz", subject=GATEWAY_SUBJECT
    )
    yield guard, sink
    guard.close()


def counting_client(framework: str, guard: kg.Guard, policy: str, calls: list[str]) -> TestClient:
    """A client of an app whose one endpoint decides under ``policy`` and logs each call."""
    app = (
        fastapi_app(guard, policy, calls)
        if framework == "fastapi"
        else starlette_app(guard, policy, calls)
    )
    guard.install(app)
    return TestClient(app, raise_server_exceptions=False)


def fastapi_app(guard: kg.Guard, policy: str, calls: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/decisions/{applicant_id}")
    @guard.decision(policy)
    async def decide(applicant_id: str) -> dict[str, bool]:
        calls.append(applicant_id)
        kg.explain(EXPLANATION)
        return {"approved": True}

    return app


def starlette_app(guard: kg.Guard, policy: str, calls: list[str]) -> Starlette:
    @guard.decision(policy)
    async def decide(request: Request) -> JSONResponse:
        calls.append(request.path_params["applicant_id"])
        kg.explain(EXPLANATION)
        return JSONResponse({"approved": True})

    return Starlette(routes=[Route("/decisions/{applicant_id}", decide, methods=["POST"])])


def post(client: TestClient, subject: str = "A-1") -> Any:
    return client.post(f"/decisions/{subject}", headers={"X-Subject-Id": subject})


def problem_type(response: Any) -> str:
    return str(response.json()["type"]).rsplit(":", 1)[-1]


def no_consent(guard: kg.Guard) -> None:
    """Nothing on file for the applicant."""


def objected(guard: kg.Guard) -> None:
    guard.consents.grant("A-1", "credit-scoring", "v1")
    guard.objections.record("A-1")


def suspended(guard: kg.Guard) -> None:
    guard.consents.grant("A-1", "credit-scoring", "v1")
    guard.switches.suspend("loan_approval", by="risk-officer", reason="drift")


@pytest.mark.parametrize(
    ("prepare", "status", "problem"),
    [
        (no_consent, 403, "no-legal-basis"),
        (objected, 202, "human-review"),
        (suspended, 503, "suspended"),
    ],
    ids=["no-consent", "objection", "suspended"],
)
def test_an_enforced_refusal_answers_before_the_decision_function_runs(
    framework: str,
    guarded: tuple[kg.Guard, kg.MemorySink],
    prepare: Callable[[kg.Guard], None],
    status: int,
    problem: str,
) -> None:
    guard, _ = guarded
    calls: list[str] = []
    client = counting_client(framework, guard, "loan_approval", calls)
    prepare(guard)

    response = post(client)

    assert (response.status_code, problem_type(response)) == (status, problem)
    assert calls == []


def test_an_allowed_decision_runs_the_decision_function_once(
    framework: str, guarded: tuple[kg.Guard, kg.MemorySink]
) -> None:
    guard, _ = guarded
    calls: list[str] = []
    client = counting_client(framework, guard, "loan_approval", calls)
    guard.consents.grant("A-1", "credit-scoring", "v1")

    response = post(client)

    assert (response.status_code, response.json()) == (200, {"approved": True})
    assert calls == ["A-1"]


def test_monitor_mode_runs_an_objected_decision_records_the_route_and_opens_no_ticket(
    framework: str, guarded: tuple[kg.Guard, kg.MemorySink]
) -> None:
    guard, sink = guarded
    calls: list[str] = []
    client = counting_client(framework, guard, "loan_shadow", calls)
    guard.consents.grant("A-1", "credit-scoring", "v1")
    guard.objections.record("A-1")

    response = post(client)

    assert (response.status_code, response.json()) == (200, {"approved": True})
    assert calls == ["A-1"]
    assert guard.reviews.pending() == []
    assert sink.of_kind(kg.EventKind.REVIEW_OPENED) == []
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert (record.id, record.mode, record.verdict, record.reason, record.review_id) == (
        response.headers["ai-decision-id"],
        "monitor",
        "route",
        "objection",
        None,
    )


def test_emotion_recognition_needs_a_consent_in_force_on_every_request(
    framework: str, guarded: tuple[kg.Guard, kg.MemorySink]
) -> None:
    guard, sink = guarded
    calls: list[str] = []
    client = counting_client(framework, guard, "interview_mood", calls)

    before = post(client)
    guard.consents.grant("A-1", "emotion", "v1")
    consented = post(client)
    guard.consents.withdraw("A-1", "emotion")
    withdrawn = post(client)

    assert (before.status_code, problem_type(before)) == (403, "emotion-consent-required")
    assert consented.status_code == 200
    assert (withdrawn.status_code, problem_type(withdrawn)) == (403, "emotion-consent-required")
    assert calls == ["A-1"]
    assert [r.reason for r in sink.of_kind(kg.EventKind.DECISION)] == [
        "emotion-consent-required",
        "not-significant",
        "emotion-consent-required",
    ]
