"""Routing for disparity, through the real ASGI app on FastAPI and on Starlette: a planted
disparity routes the policy's decisions to humans until an officer clears it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.disparity import MONITOR_NAME
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

PRICING = kg.DecisionPolicy(
    name="pricing",
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.MEDIUM,
    model=kg.ModelInfo(name="pricer", version="1"),
    statutory_basis=kg.StatutoryBasis(law="Insurance Law, art. 9"),
    inputs=frozenset({"income"}),
    monitoring=kg.DisparityMonitoring(
        grounds=frozenset({kg.ProtectedGround.SEX}),
        action=kg.DisparityAction.ROUTE,
        min_sample=30,
    ),
)
ROUTE_DETAIL = (
    "The outcomes of these decisions differ between groups of people more than allowed, "
    "so a person will decide until this is checked."
)


def sex_of(subject: str) -> dict[str, str]:
    """Subjects are named ``f-1``, ``m-2``: the group is the prefix (tests only)."""
    return {"sex": subject.split("-")[0]}


def build(framework: str, guard: kg.Guard) -> Any:
    @guard.decision("pricing")
    async def price(favourable: bool) -> dict[str, bool]:
        kg.explain(EXPLANATION)
        kg.mark_outcome(favourable=favourable)
        return {"favourable": favourable}

    if framework == "fastapi":
        app = FastAPI()

        @app.post("/price/{applicant}")
        async def fastapi_price(applicant: str, favourable: bool) -> dict[str, bool]:
            return await price(favourable)

    else:

        async def starlette_price(request: Request) -> JSONResponse:
            return JSONResponse(await price(request.query_params["favourable"] == "true"))

        app = Starlette(routes=[Route("/price/{applicant}", starlette_price, methods=["POST"])])
    guard.install(app)
    return app


class PricingService:
    """The pricing service, its guard and audit records, and a client."""

    def __init__(self, framework: str) -> None:
        self.guard, self.sink = memory_guard(
            [PRICING], contact="fairness@example.kz", subject=GATEWAY_SUBJECT, groups=sex_of
        )
        self.client = TestClient(build(framework, self.guard), raise_server_exceptions=False)

    def decide(self, subject: str, favourable: bool) -> Any:
        return self.client.post(
            f"/price/{subject}",
            params={"favourable": "true" if favourable else "false"},
            headers={"X-Subject-Id": subject},
        )

    def traffic(self, rates: dict[str, float], per_group: int) -> list[int]:
        """``per_group`` decisions per group, favourable spread evenly; their status codes."""
        return [
            self.decide(f"{group}-{i}", int((i + 1) * rate) > int(i * rate)).status_code
            for i in range(per_group)
            for group, rate in rates.items()
        ]


@pytest.fixture
def pricing(framework: str) -> Iterator[PricingService]:
    service = PricingService(framework)
    yield service
    service.client.close()
    service.guard.close()


def test_a_planted_disparity_routes_the_policy_to_humans_and_says_why(
    pricing: PricingService,
) -> None:
    statuses = pricing.traffic({"f": 0.2, "m": 0.8}, 80)
    pricing.guard.disparity.flush()
    assert set(statuses) <= {200, 202}
    assert pricing.guard.switches.is_routed("pricing")
    assert not pricing.guard.switches.is_suspended("pricing")

    response = pricing.decide("m-1000", True)
    assert response.status_code == 202
    body = response.json()
    assert (body["detail"], body["review"]["reason"]) == (ROUTE_DETAIL, "disparity")
    record = pricing.sink.of_kind(kg.EventKind.DECISION)[-1]
    assert (record.id, record.verdict, record.reason) == (
        body["decision_id"],
        "route",
        "disparity",
    )
    [started] = pricing.sink.of_kind(kg.EventKind.ROUTING_STARTED)
    [detected] = pricing.sink.of_kind(kg.EventKind.DISPARITY_DETECTED)
    assert started.policy == "pricing"
    assert started.reviewer == pricing.guard.auditor.reviewer_ref(MONITOR_NAME)
    assert started.detail == detected.detail
    assert detected.detail is not None and detected.detail.startswith("sex=f: selection rate")
    assert detected.detail.endswith("action route")


def test_an_officer_clearing_the_route_lets_the_ai_decide_again(pricing: PricingService) -> None:
    pricing.traffic({"f": 0.2, "m": 0.8}, 80)
    pricing.guard.disparity.flush()
    assert pricing.decide("f-1000", True).status_code == 202
    pricing.guard.switches.clear_route("pricing", by="officer@example.kz", reason="retrained")
    response = pricing.decide("f-1001", True)
    assert (response.status_code, response.json()) == (200, {"favourable": True})
    [cleared] = pricing.sink.of_kind(kg.EventKind.ROUTING_CLEARED)
    assert (cleared.policy, cleared.reviewer, cleared.detail) == (
        "pricing",
        pricing.guard.auditor.reviewer_ref("officer@example.kz"),
        "retrained",
    )


def test_equal_outcomes_route_nothing(pricing: PricingService) -> None:
    assert set(pricing.traffic({"f": 0.5, "m": 0.52}, 80)) == {200}
    pricing.guard.disparity.flush()
    assert not pricing.guard.switches.is_routed("pricing")
    assert pricing.sink.of_kind(kg.EventKind.ROUTING_STARTED) == []
    assert pricing.decide("f-1000", True).status_code == 200


def test_a_human_decision_is_not_routed(pricing: PricingService) -> None:
    pricing.guard.switches.route("pricing", by="officer@example.kz", reason="by hand")

    @pricing.guard.decision("pricing")
    def price() -> str:
        kg.explain(EXPLANATION)
        return "priced"

    with kg.decision_context("f-1", reviewer=kg.Reviewer(id="officer-1")):
        assert price() == "priced"
    with kg.decision_context("f-2"), pytest.raises(kg.HumanReviewRequired):
        price()
