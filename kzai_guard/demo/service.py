"""A small loan-decision service, as a bank would write it with kzai_guard.

The model is a stand-in (a debt-to-income rule); everything around it is what a real service
needs: the policy, the consent routes of the bank's own app, the decision endpoint, its
explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

import kzai_guard as kg

MODEL = kg.ModelInfo(name="loan-scorer", version="1.4", provider="Demo Bank")
NOTICE_VERSION = "2026-01"

LOAN_APPROVAL = kg.DecisionPolicy(
    name="loan_approval",
    purpose="credit-scoring",
    domain=kg.Domain.CREDIT,
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.HIGH,
    notice_version=NOTICE_VERSION,
    model=MODEL,
)


class Application(BaseModel):
    """A loan application."""

    monthly_income: int = Field(gt=0, description="Net monthly income, tenge")
    monthly_debt: int = Field(ge=0, description="Existing monthly repayments, tenge")
    amount: int = Field(gt=0, description="Requested amount, tenge")
    term_months: int = Field(gt=0, le=120)


class LoanDecision(BaseModel):
    """The service's answer."""

    applicant_id: str
    approved: bool
    monthly_payment: int


DEMO_OFFICER_TOKEN = "demo-credit-officer-12"
"""The bearer token of the demo's one credit officer (the demo's stand-in for a bank's SSO)."""


class DemoStaffSignIn(AuthenticationBackend):
    """The bank's staff authentication, reduced to one fixed token for the demo.

    A real service puts its own identity provider here; the guard reads only what this
    establishes (``scope["user"]`` and the ``ai-reviewer`` scope), never a client's header.
    """

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if conn.headers.get("authorization") != f"Bearer {DEMO_OFFICER_TOKEN}":
            return None
        return AuthCredentials(["authenticated", "ai-reviewer"]), SimpleUser("credit-officer-12")


class ConsentForm(BaseModel):
    """What the bank's consent screen submits."""

    notice_version: str = NOTICE_VERSION


def build_service(workdir: Path) -> tuple[FastAPI, kg.Guard]:
    """The app and its guard, with the store and the audit log under ``workdir``."""
    guard = kg.Guard(
        policies=[LOAN_APPROVAL],
        profile="kz",
        store=f"sqlite:///{workdir / 'kzai-guard.db'}",
        audit=workdir / "kzai-audit",
        # the decision is about the applicant its route names, and relies on that one's consent
        subject=kg.from_path_param("applicant_id"),
        # who asks on the person's routes: the bank's gateway sets this header after login
        person=kg.from_header("X-Subject-Id"),
        contact="privacy@demo-bank.kz, +7 727 000 00 00",
    )
    app = FastAPI(
        title="Demo Bank loans",
        middleware=[Middleware(AuthenticationMiddleware, backend=DemoStaffSignIn())],
    )
    guard.install(app)

    @app.post("/loans/{applicant_id}/decision", response_model=LoanDecision)
    @guard.decision("loan_approval")
    async def decide(applicant_id: str, application: Application) -> LoanDecision:
        payment = application.amount // application.term_months
        burden = (application.monthly_debt + payment) / application.monthly_income
        approved = burden <= 0.5
        kg.explain(
            kg.Explanation(
                summary={
                    "kk": "Несие " + ("мақұлданды." if approved else "берілмеді."),
                    "ru": "Кредит " + ("одобрен." if approved else "не одобрен."),
                    "en": "The loan is " + ("approved." if approved else "declined."),
                },
                factors=(
                    kg.Factor(
                        name="debt-to-income ratio",
                        direction=kg.Direction.FAVOURABLE
                        if approved
                        else kg.Direction.UNFAVOURABLE,
                        weight=0.8,
                        value=f"{burden:.0%}",
                    ),
                    kg.Factor(name="requested amount", direction=kg.Direction.NEUTRAL, weight=0.2),
                ),
                ai_role="A scoring model took this decision without a person.",
                consequences=(
                    "The loan is granted on the offered terms."
                    if approved
                    else "The loan is not granted; you may apply again or ask for a person."
                ),
            )
        )
        return LoanDecision(applicant_id=applicant_id, approved=approved, monthly_payment=payment)

    @app.post("/consents/{applicant_id}/credit-scoring", status_code=201)
    def give_consent(applicant_id: str, form: ConsentForm) -> dict[str, Any]:
        consent = guard.consents.grant(
            applicant_id, "credit-scoring", form.notice_version, method=kg.CollectionMethod.WEB_FORM
        )
        return {"consent_id": consent.id, "purpose": consent.purpose}

    @app.delete("/consents/{applicant_id}/credit-scoring", response_model=None)
    def withdraw_consent(applicant_id: str) -> dict[str, Any] | JSONResponse:
        try:
            withdrawn = guard.consents.withdraw(applicant_id, "credit-scoring")
        except kg.WithdrawalRestricted as refused:
            # a law or an unfulfilled obligation forbids it (KZ-PD 8): tell the person why
            return JSONResponse(
                {
                    "withdrawn": 0,
                    "grounds": [r.ground for r in refused.restrictions],
                    "possible_from": refused.until.isoformat(),
                },
                status_code=409,
            )
        return {"withdrawn": len(withdrawn)}

    return app, guard
