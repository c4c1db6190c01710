"""The person's routes run behind the app's own middleware, and 400s are recorded too."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.testing import StaticAuthentication, memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

MODEL = kg.ModelInfo(name="m", version="1")


def loan_policy(**extra: Any) -> kg.DecisionPolicy:
    return kg.DecisionPolicy(
        name="loan",
        purpose="credit",
        significance="legal-effect",
        autonomy="high",
        risk="high",
        model=MODEL,
        **extra,
    )


def app_with(guard: kg.Guard, middleware: list[Middleware]) -> Starlette:
    @guard.decision("loan")
    async def decide(request: Request) -> JSONResponse:
        kg.explain(EXPLANATION)
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[Route("/loans/{applicant}", decide, methods=["POST"])], middleware=middleware
    )
    guard.install(app)
    return app


@pytest.mark.parametrize("root_path", ["", "/bank"], ids=["at-the-root", "below-a-root-path"])
def test_person_routes_see_the_user_set_by_the_apps_own_authentication(root_path: str) -> None:
    guard, _ = memory_guard([loan_policy()], subject=kg.from_user(), contact="c")
    app = app_with(guard, [Middleware(StaticAuthentication, username="A-1")])
    client = TestClient(app, root_path=root_path)
    guard.consents.grant("A-1", "credit", "v1")
    decision_id = client.post("/loans/A-1").headers["ai-decision-id"]
    explanation = client.get(f"/ai-decisions/{decision_id}/explanation")
    assert explanation.status_code == 200
    assert explanation.json()["decision_id"] == decision_id
    guard.close()


def test_a_path_parameter_subject_uses_the_person_resolver_on_person_routes() -> None:
    guard, _ = memory_guard(
        [loan_policy()],
        subject=kg.from_path_param("applicant"),
        person=kg.from_header("X-Person"),
        contact="c",
    )
    client = TestClient(app_with(guard, []))
    guard.consents.grant("A-1", "credit", "v1")
    decision_id = client.post("/loans/A-1").headers["ai-decision-id"]
    url = f"/ai-decisions/{decision_id}/explanation"
    assert client.get(url, headers={"X-Person": "A-1"}).status_code == 200
    assert client.get(url, headers={"X-Person": "A-2"}).status_code == 404
    guard.close()


def test_emotion_recognition_without_consent_is_blocked_over_http() -> None:
    policy = kg.DecisionPolicy(
        name="loan",
        purpose="emotion",
        significance="none",
        autonomy="high",
        risk="high",
        capabilities=frozenset({kg.Capability.EMOTION_RECOGNITION}),
        model=MODEL,
    )
    guard, sink = memory_guard([policy], contact="c", subject=GATEWAY_SUBJECT)
    client = TestClient(app_with(guard, []), raise_server_exceptions=False)
    refused = client.post("/loans/A-1", headers={"X-Subject-Id": "A-1"})
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:kzai-guard:problem:emotion-consent-required"
    guard.consents.grant("A-1", "emotion", "v1")
    assert client.post("/loans/A-1", headers={"X-Subject-Id": "A-1"}).status_code == 200
    assert [r.reason for r in sink.of_kind(kg.EventKind.DECISION)] == [
        "emotion-consent-required",
        "not-significant",
    ]
    guard.close()


def test_a_refusal_for_a_missing_subject_is_recorded_and_not_cached() -> None:
    guard, sink = memory_guard([loan_policy()], contact="c", subject=GATEWAY_SUBJECT)
    client = TestClient(app_with(guard, []), raise_server_exceptions=False)
    response = client.post("/loans/A-1")
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert (record.id, record.verdict, record.reason, record.subject) == (
        response.json()["decision_id"],
        "block",
        "subject-missing",
        None,
    )
    guard.close()
