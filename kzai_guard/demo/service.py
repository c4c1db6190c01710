"""A small loan-decision service, as a bank would write it with kzai_guard.

The model is a stand-in (a debt-to-income rule); everything around it is what a real service
needs: the policy, the consent routes of the bank's own app, the decision endpoint, its
explanation, and authentication. Every request is signed in (Starlette's
``AuthenticationMiddleware`` with a token the demo signs, :mod:`kzai_guard.demo.tokens`):
the person's routes ask ``kg.from_user()`` who is asking, and an applicant's consent and
decision routes answer only that applicant (403 for anyone else, 401 without a valid token).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.authentication import AuthCredentials, BaseUser, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

import kzai_guard as kg
from kzai_guard.demo.tokens import PersonAuthentication, PersonTokens, unauthenticated

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
    # what the person may ask for (KZ-AI 16(1)(5)): what they submitted, and the ratio the
    # decision turned on; the model's internal score stays the bank's trade secret
    data_basis=(
        kg.BasisInput(name="monthly_income", source="request", label="Net monthly income"),
        kg.BasisInput(name="monthly_debt", source="request", label="Existing monthly repayments"),
        kg.BasisInput(name="amount", source="request", label="Requested amount"),
        kg.BasisInput(name="term_months", source="request", label="Term, months"),
        kg.BasisInput(name="debt_to_income", source="derived", label="Debt-to-income ratio"),
        kg.BasisInput(
            name="risk_score",
            source="derived",
            redaction="trade_secret",
            reason="The scoring model's output is the bank's trade secret.",
        ),
    ),
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


class DemoStaffSignIn(PersonAuthentication):
    """The bank's sign-in: its staff's, reduced to one fixed token for the demo, and the
    applicants' signed tokens (:class:`~kzai_guard.demo.tokens.PersonAuthentication`).

    A real service puts its own identity provider here; the guard reads only what this
    establishes (``scope["user"]`` and the ``ai-reviewer`` scope), never a client's header.
    """

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """The signed-in credit officer or person; raises for a request that is not signed in."""
        if conn.headers.get("authorization") == f"Bearer {DEMO_OFFICER_TOKEN}":
            return AuthCredentials(["authenticated", "ai-reviewer"]), SimpleUser(
                "credit-officer-12"
            )
        return await super().authenticate(conn)


class ConsentForm(BaseModel):
    """What the bank's consent screen submits."""

    notice_version: str = NOTICE_VERSION


class DemoService(NamedTuple):
    """The demo's app, its guard, and the token issuer that stands in for the bank's login."""

    app: FastAPI
    guard: kg.Guard
    tokens: PersonTokens


def signed_in_as_applicant(applicant_id: str, request: Request) -> str:
    """The route's applicant, when that is who signed in; 403 for anyone else."""
    if request.user.identity != applicant_id:
        raise HTTPException(403, "you may act only for yourself")
    return applicant_id


def build_service(workdir: Path, tokens: PersonTokens | None = None) -> DemoService:
    """The app and its guard, with the store and the audit log under ``workdir``."""
    tokens = tokens or PersonTokens()
    guard = kg.Guard(
        policies=[LOAN_APPROVAL],
        profile="kz",
        store=f"sqlite:///{workdir / 'kzai-guard.db'}",
        audit=workdir / "kzai-audit",
        # the decision is about the applicant its route names, and relies on that one's consent
        subject=kg.from_path_param("applicant_id"),
        # who asks on the person's routes: whom the app's authentication signed in
        person=kg.from_user(),
        contact="privacy@demo-bank.kz, +7 727 000 00 00",
    )
    app = FastAPI(title="Demo Bank loans")
    guard.install(app)
    app.add_middleware(
        AuthenticationMiddleware,
        backend=DemoStaffSignIn(tokens),
        on_error=unauthenticated,
    )
    own = [Depends(signed_in_as_applicant)]

    @app.get("/me")
    def signed_in(request: Request) -> dict[str, str]:
        return {"person": request.user.identity}

    @app.post("/loans/{applicant_id}/decision", response_model=LoanDecision, dependencies=own)
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
        kg.data_basis(
            {
                **application.model_dump(),
                "debt_to_income": round(burden, 4),
                "risk_score": round(1 - burden, 4),
            }
        )
        return LoanDecision(applicant_id=applicant_id, approved=approved, monthly_payment=payment)

    @app.post("/consents/{applicant_id}/credit-scoring", status_code=201, dependencies=own)
    def give_consent(applicant_id: str, form: ConsentForm) -> dict[str, Any]:
        consent = guard.consents.grant(
            applicant_id, "credit-scoring", form.notice_version, method=kg.CollectionMethod.WEB_FORM
        )
        return {"consent_id": consent.id, "purpose": consent.purpose}

    @app.delete("/consents/{applicant_id}/credit-scoring", response_model=None, dependencies=own)
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

    return DemoService(app, guard, tokens)
