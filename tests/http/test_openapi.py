"""FastAPI keeps validation, dependency injection and OpenAPI for guarded endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT


class Application(BaseModel):
    income: int
    amount: int


def scorer() -> float:
    return 0.8


def build() -> tuple[TestClient, kg.Guard]:
    guard, _ = memory_guard(
        [
            kg.DecisionPolicy(
                name="loan_approval",
                purpose="credit-scoring",
                significance="legal-effect",
                autonomy="high",
                risk="high",
                model=kg.ModelInfo(name="scorer", version="1"),
            )
        ],
        contact="support@bank.kz",
        subject=GATEWAY_SUBJECT,
    )
    app = FastAPI()
    guard.install(app)

    @app.post("/loans/{applicant_id}/decision")
    @guard.decision("loan_approval")
    async def decide(
        applicant_id: str, application: Application, score: Annotated[float, Depends(scorer)]
    ) -> dict[str, object]:
        kg.explain(EXPLANATION)
        return {
            "id": applicant_id,
            "approved": score > 0.5 and application.amount < application.income,
        }

    @app.post("/loans/{loan_id:int}/review-decision")
    @guard.decision("loan_approval")
    def decide_sync(
        loan_id: int, application: Application, score: Annotated[float, Depends(scorer)]
    ) -> dict[str, object]:
        kg.explain(EXPLANATION)
        return {"loan": loan_id, "approved": score > 0.5 and application.amount < 100}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return TestClient(app), guard


def test_request_validation_still_happens_before_the_decision() -> None:
    client, guard = build()
    guard.consents.grant("A-1", "credit-scoring", "v1")
    invalid = client.post(
        "/loans/A-1/decision", json={"income": "lots"}, headers={"X-Subject-Id": "A-1"}
    )
    assert invalid.status_code == 422
    valid = client.post(
        "/loans/A-1/decision", json={"income": 10, "amount": 5}, headers={"X-Subject-Id": "A-1"}
    )
    assert valid.json() == {"id": "A-1", "approved": True}
    guard.close()


def test_guarded_operations_list_the_refusals_and_others_do_not() -> None:
    client, guard = build()
    schema = client.get("/openapi.json").json()
    decide = schema["paths"]["/loans/{applicant_id}/decision"]["post"]
    assert set(decide["responses"]) == {"200", "202", "400", "403", "422", "500", "503"}
    problem = decide["responses"]["403"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/KzaiGuardProblem"}
    assert [p["name"] for p in decide["parameters"]] == ["applicant_id"]
    assert decide["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "Application"
    )
    assert set(schema["paths"]["/health"]["get"]["responses"]) == {"200"}
    guard.close()


def test_a_sync_endpoint_keeps_validation_and_injection() -> None:
    client, guard = build()
    guard.consents.grant("A-1", "credit-scoring", "v1")
    headers = {"X-Subject-Id": "A-1"}
    not_a_number = client.post("/loans/x/review-decision", json={"income": 1, "amount": 5})
    invalid = client.post("/loans/7/review-decision", json={"amount": 5}, headers=headers)
    valid = client.post(
        "/loans/7/review-decision", json={"income": 10, "amount": 5}, headers=headers
    )
    assert (not_a_number.status_code, invalid.status_code) == (404, 422)
    assert valid.json() == {"loan": 7, "approved": True}
    assert valid.headers["ai-decision-id"]
    guard.close()


def test_a_guarded_path_with_a_converter_lists_the_refusals() -> None:
    client, guard = build()
    schema = client.get("/openapi.json").json()
    decide = schema["paths"]["/loans/{loan_id}/review-decision"]["post"]
    assert set(decide["responses"]) == {"200", "202", "400", "403", "422", "500", "503"}
    assert [p["name"] for p in decide["parameters"]] == ["loan_id"]
    guard.close()
