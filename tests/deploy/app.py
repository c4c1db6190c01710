"""The service the deployment tests run under real servers, built as the README builds one.

A FastAPI module with its guard made at import, configured by environment variables so that
every worker a server starts, and every operator script importing this module, builds the same
guard:

- ``KZG_DEPLOY_STORE``: the store URL (``sqlite:///...`` or ``postgresql://...``);
- ``KZG_DEPLOY_AUDIT``: the audit log, a directory or a ``postgresql://`` URL;
- ``KZG_DEPLOY_SIGNER``: the PEM private key that signs the log's checkpoints;
- ``KZG_DEPLOY_OPERATOR_TOKEN``: the bearer token the consent routes require;
- ``KZG_DEPLOY_READY_DIR``: where each worker marks itself ready (a file named by its pid) when
  its lifespan starts, so that a test knows when every worker serves.

The consent routes stand for the bank's own back office: a client cannot grant or withdraw a
consent by naming a subject, only a caller holding the operator token can. Every response
carries the serving process's id in ``X-Worker-Pid`` so that the tests see which worker
answered.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException

import kzai_guard as kg
from kzai_guard.audit.keys import Signer
from kzai_guard.errors import ConfigurationError
from tests.deploy.client import PID_HEADER

__all__ = ["LOAN_APPROVAL", "PID_HEADER", "PURPOSE", "app", "guard"]

PURPOSE = "credit-scoring"

LOAN_APPROVAL = kg.DecisionPolicy(
    name="loan_approval",
    purpose=PURPOSE,
    domain=kg.Domain.CREDIT,
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.HIGH,
    model=kg.ModelInfo(name="scorer", version="1.4"),
)
"""The README's significant, high-autonomy loan decision, relying on consent."""

MODEL_SECONDS = 0.003
"""How long the stand-in model scores an application."""

EXPLANATION = kg.Explanation(
    summary={"ru": "Кредит одобрен", "en": "Loan approved"},
    factors=[kg.Factor(name="income", direction=kg.Direction.FAVOURABLE, weight=0.6)],
    ai_role="A scoring model took the decision.",
    consequences="The loan is granted on the offered terms.",
)


def _setting(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"{name} is not set: the deployment test app reads its configuration from "
            "KZG_DEPLOY_STORE, KZG_DEPLOY_AUDIT, KZG_DEPLOY_SIGNER and KZG_DEPLOY_OPERATOR_TOKEN"
        )
    return value


OPERATOR_TOKEN = _setting("KZG_DEPLOY_OPERATOR_TOKEN").encode()

guard = kg.Guard(
    policies=[LOAN_APPROVAL],
    profile="kz",
    store=_setting("KZG_DEPLOY_STORE"),
    audit=_setting("KZG_DEPLOY_AUDIT"),
    audit_signer=Signer.from_file(_setting("KZG_DEPLOY_SIGNER")),
    subject=kg.from_path_param("applicant_id"),
    contact="privacy@bank.kz",
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Mark this worker ready (``KZG_DEPLOY_READY_DIR/<pid>``) once it serves; unmark at exit."""
    marker = Path(os.environ["KZG_DEPLOY_READY_DIR"], str(os.getpid()))
    marker.touch()
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


app = FastAPI(lifespan=lifespan)
guard.install(app)


class WorkerPid:
    """Pure ASGI middleware adding the serving process's id to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_pid(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (PID_HEADER.encode(), _pid_bytes())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_pid)


def _pid_bytes() -> bytes:
    # read per response: under --preload this module is imported before the workers fork
    return str(os.getpid()).encode()


app.add_middleware(WorkerPid)


def _authorize(authorization: str | None) -> None:
    presented = (authorization or "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(presented, OPERATOR_TOKEN):
        raise HTTPException(status_code=401, detail="the operator token is required")


@app.get("/healthz")
def healthz() -> dict[str, int]:
    """Liveness: the serving process's id."""
    return {"pid": os.getpid()}


@app.post("/loans/{applicant_id}/decision")
@guard.decision("loan_approval")
async def decide(applicant_id: str) -> dict[str, Any]:
    """The decision: always approves, with its explanation.

    The stand-in model holds the worker's event loop for a few milliseconds, as a real scoring
    model does, so that a busy worker leaves new connections to the others.
    """
    time.sleep(MODEL_SECONDS)
    kg.explain(EXPLANATION)
    return {"applicant_id": applicant_id, "approved": True}


@app.post("/consents/{applicant_id}", status_code=201)
def grant_consent(applicant_id: str, authorization: str | None = Header(None)) -> dict[str, str]:
    """The back office records the applicant's consent (operator token required)."""
    _authorize(authorization)
    consent = guard.consents.grant(applicant_id, PURPOSE, "2026-01")
    return {"consent_id": consent.id}


@app.delete("/consents/{applicant_id}")
def withdraw_consent(applicant_id: str, authorization: str | None = Header(None)) -> dict[str, int]:
    """The back office records the applicant's withdrawal (operator token required)."""
    _authorize(authorization)
    return {"withdrawn": len(guard.consents.withdraw(applicant_id, PURPOSE))}
