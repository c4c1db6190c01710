"""One loan-decision service, built on FastAPI and on Starlette, for the HTTP-level tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.testing import StaticAuthentication, memory_guard
from tests.samples import GATEWAY_SUBJECT

SUBJECT = "X-Subject-Id"
EXPLANATION = {
    "summary": {"ru": "Заявка одобрена", "en": "Application approved"},
    "factors": [{"name": "income", "direction": "favourable", "weight": 0.7}],
    "ai_role": "A scoring model decided; no person reviewed it.",
    "consequences": "The loan is granted on the offered terms.",
}
MODEL = kg.ModelInfo(name="scorer", version="1.4", provider="Example Bank")


def policies() -> list[kg.DecisionPolicy]:
    significant = {
        "significance": kg.Significance.LEGAL_EFFECT,
        "risk": kg.RiskClass.HIGH,
        "model": MODEL,
    }
    return [
        kg.DecisionPolicy(
            name="loan_approval",
            purpose="credit-scoring",
            domain=kg.Domain.CREDIT,
            autonomy=kg.Autonomy.HIGH,
            **significant,
        ),
        kg.DecisionPolicy(
            name="loan_v2",
            purpose="credit-scoring",
            notice_version="2026-02",
            autonomy=kg.Autonomy.HIGH,
            **significant,
        ),
        kg.DecisionPolicy(
            name="tax_check",
            autonomy=kg.Autonomy.HIGH,
            statutory_basis=kg.StatutoryBasis(law="Tax Code, art. 12", mandatory=True),
            **significant,
        ),
        kg.DecisionPolicy(
            name="benefit",
            autonomy=kg.Autonomy.HIGH,
            statutory_basis=kg.StatutoryBasis(law="Social Code, art. 5"),
            **significant,
        ),
        kg.DecisionPolicy(name="hiring", purpose="hiring", autonomy=kg.Autonomy.LOW, **significant),
        kg.DecisionPolicy(
            name="contract_pricing",
            contract_necessity=True,
            fallback=kg.Fallback.HUMAN,
            autonomy=kg.Autonomy.HIGH,
            **significant,
        ),
        kg.DecisionPolicy(
            name="loan_monitor",
            purpose="credit-scoring",
            autonomy=kg.Autonomy.HIGH,
            mode=kg.Mode.MONITOR,
            **significant,
        ),
        kg.DecisionPolicy(
            name="offers",
            significance=kg.Significance.NONE,
            autonomy=kg.Autonomy.HIGH,
            risk=kg.RiskClass.MINIMAL,
            model=MODEL,
        ),
    ]


def vulnerable(subject: str) -> list[kg.VulnerabilityGround]:
    return [kg.VulnerabilityGround.ELDERLY] if subject.startswith("V-") else []


# endpoint name -> (policy, explanation to give: "ok", "none", "invalid" or "no-factors", sync?)
ENDPOINTS: dict[str, tuple[str, str, bool]] = {
    "loan": ("loan_approval", "ok", False),
    "loan-sync": ("loan_approval", "ok", True),
    "loan-v2": ("loan_v2", "ok", False),
    "loan-unexplained": ("loan_approval", "none", False),
    "loan-bad-explanation": ("loan_approval", "invalid", True),
    "loan-no-factors": ("loan_approval", "no-factors", False),
    "monitor-no-factors": ("loan_monitor", "no-factors", False),
    "tax": ("tax_check", "ok", False),
    "benefit": ("benefit", "ok", False),
    "hiring": ("hiring", "ok", False),
    "contract": ("contract_pricing", "ok", False),
    "monitor": ("loan_monitor", "ok", False),
    "monitor-unexplained": ("loan_monitor", "none", False),
    "offers": ("offers", "none", True),
}


def _give_explanation(kind: str) -> None:
    if kind == "ok":
        kg.explain(kg.Explanation.model_validate(EXPLANATION))
    elif kind == "invalid":
        kg.explain({**EXPLANATION, "factors": [{"name": "x", "direction": "up", "weight": 7}]})
    elif kind == "no-factors":
        kg.explain({**EXPLANATION, "factors": []})


def build_fastapi(guard: kg.Guard, middleware: list[Middleware]) -> Any:
    app = FastAPI(middleware=middleware)
    guard.install(app)
    for path, (policy, explanation, sync) in ENDPOINTS.items():
        _add_fastapi_route(app, guard, path, policy, explanation, sync)
    return app


def _add_fastapi_route(
    app: FastAPI, guard: kg.Guard, path: str, policy: str, explanation: str, sync: bool
) -> None:
    if sync:

        @guard.decision(policy)
        def decide_sync(applicant_id: str, amount: int = 1000) -> dict[str, Any]:
            _give_explanation(explanation)
            return {"applicant": applicant_id, "approved": amount < 5000}

        app.post(f"/{path}/{{applicant_id}}", name=path)(decide_sync)
    else:

        @guard.decision(policy)
        async def decide(applicant_id: str, amount: int = 1000) -> dict[str, Any]:
            _give_explanation(explanation)
            return {"applicant": applicant_id, "approved": amount < 5000}

        app.post(f"/{path}/{{applicant_id}}", name=path)(decide)


def build_starlette(guard: kg.Guard, middleware: list[Middleware]) -> Any:
    routes = []
    for path, (policy, explanation, sync) in ENDPOINTS.items():
        routes.append(
            Route(
                f"/{path}/{{applicant_id}}",
                _starlette_endpoint(guard, policy, explanation, sync),
                methods=["POST"],
            )
        )
    app = Starlette(routes=routes, middleware=middleware)
    guard.install(app)
    return app


def _starlette_endpoint(
    guard: kg.Guard, policy: str, explanation: str, sync: bool
) -> Callable[..., Any]:
    if sync:

        @guard.decision(policy)
        def decide_sync(request: Request) -> JSONResponse:
            _give_explanation(explanation)
            return JSONResponse(
                {"applicant": request.path_params["applicant_id"], "approved": True}
            )

        return decide_sync

    @guard.decision(policy)
    async def decide(request: Request) -> JSONResponse:
        _give_explanation(explanation)
        return JSONResponse({"applicant": request.path_params["applicant_id"], "approved": True})

    return decide


class Service:
    """A running test service: its guard, its audit records and a client."""

    def __init__(
        self,
        framework: str,
        profile: str = "kz",
        reviewer: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.guard, self.sink = memory_guard(
            policies(),
            profile=profile,
            vulnerability=vulnerable,
            contact="support@bank.kz",
            clock=clock,
            subject=GATEWAY_SUBJECT,
        )
        middleware = []
        if reviewer is not None:
            middleware.append(
                Middleware(StaticAuthentication, username=reviewer, scopes=["ai-reviewer"])
            )
        build = build_fastapi if framework == "fastapi" else build_starlette
        self.app = build(self.guard, middleware)
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def decide(self, path: str, subject: str | None = "A-1", **headers: str) -> Any:
        sent = dict(headers)
        if subject is not None:
            sent[SUBJECT] = subject
        return self.client.post(f"/{path}/{subject or 'none'}", headers=sent)

    def close(self) -> None:
        self.client.close()
        self.guard.close()


@pytest.fixture(params=["fastapi", "starlette"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def service(framework: str) -> Iterator[Service]:
    svc = Service(framework)
    yield svc
    svc.close()


@pytest.fixture
def make_service(framework: str) -> Iterator[Callable[..., Service]]:
    made: list[Service] = []

    def make(**options: Any) -> Service:
        svc = Service(framework, **options)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()
