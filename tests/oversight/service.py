"""A loan service with a reviewer's desk, on FastAPI or Starlette, behind its own sign-in.

Staff authenticate with ``Authorization: Bearer <token>`` or, in a browser, with the session
cookie that ``GET /test-sign-in?token=...`` sets: the app's own (test) authentication, which
puts the user and their scopes in the ASGI scope. The guard reads the reviewer from there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import kzai_guard as kg

SUBJECT_HEADER = "X-Subject-Id"
LOAN = kg.DecisionPolicy(
    name="loan_approval",
    purpose="credit-scoring",
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.HIGH,
    model=kg.ModelInfo(name="scorer", version="2.1"),
)
CARD = kg.DecisionPolicy(
    name="card_limit",
    statutory_basis=kg.StatutoryBasis(law="Banking Law, art. 34"),
    significance=kg.Significance.SIMILARLY_SIGNIFICANT,
    autonomy=kg.Autonomy.MEDIUM,
    risk=kg.RiskClass.MEDIUM,
    model=kg.ModelInfo(name="limits", version="1.0"),
)
EXPLANATION = kg.Explanation(
    summary={kg.Language.EN: "Limit set", kg.Language.RU: "Лимит установлен"},
    factors=(kg.Factor(name="income", direction=kg.Direction.FAVOURABLE, weight=0.6),),
    ai_role="A model computed the limit.",
    consequences="The card gets this limit.",
)
STAFF: dict[str, tuple[str, list[str]]] = {
    "token-marat": ("E-9", ["authenticated", "ai-reviewer"]),
    "token-aigerim": ("E-7", ["authenticated", "ai-reviewer"]),
    "token-senior": ("E-1", ["authenticated", "ai-reviewer", "ai-reviewer:subject"]),
    "token-clerk": ("E-3", ["authenticated"]),
}
SESSION_COOKIE = "test-session"


def bearer(token: str) -> dict[str, str]:
    """The headers of a request signed in as the staff member with ``token``."""
    return {"Authorization": f"Bearer {token}"}


class StaffSignIn(AuthenticationBackend):
    """The app's own authentication: a bearer token or the test session cookie."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = conn.headers.get("authorization", "").removeprefix("Bearer ")
        token = token or conn.cookies.get(SESSION_COOKIE, "")
        if token not in STAFF:
            return None
        user, scopes = STAFF[token]
        return AuthCredentials(scopes), SimpleUser(user)


class Clock:
    """The guard's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_guard(
    store: str = "memory://",
    clock: Callable[[], datetime] | None = None,
    policies: tuple[kg.DecisionPolicy, ...] = (LOAN, CARD),
    **options: Any,
) -> tuple[kg.Guard, kg.MemorySink]:
    """A guard for the policies, with a memory audit sink the test reads."""
    sink = kg.MemorySink()
    guard = kg.Guard(
        list(policies),
        store=store,
        audit=sink,
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        subject=kg.from_path_param("applicant_id"),
        person=kg.from_header(SUBJECT_HEADER),
        contact="credit@example.kz",
        clock=clock,
        **options,
    )
    return guard, sink


async def sign_in(request: Request) -> Response:
    """``GET /test-sign-in?token=...``: the session cookie, then the console."""
    response = RedirectResponse(request.query_params.get("next", "/ai-reviews/console/"), 303)
    response.set_cookie(
        SESSION_COOKIE, request.query_params["token"], httponly=True, samesite="strict"
    )
    return response


def build_app(framework: str, guard: kg.Guard) -> Any:
    """The service on ``framework`` ("fastapi" or "starlette"), with the guard installed."""
    middleware = [Middleware(AuthenticationMiddleware, backend=StaffSignIn())]

    routes = [Route("/test-sign-in", sign_in)]
    for path, policy in (("/loans", LOAN.name), ("/cards", CARD.name)):
        if policy in guard.policy_names:
            routes.append(
                Route(path + "/{applicant_id}", _endpoint(guard, policy), methods=["POST"])
            )
    app: Any
    if framework == "fastapi":
        app = FastAPI(middleware=middleware)
        app.router.routes.extend(routes)
    else:
        app = Starlette(routes=routes, middleware=middleware)
    guard.install(app)
    return app


def _endpoint(guard: kg.Guard, policy: str) -> Callable[[Request], Any]:
    @guard.decision(policy)
    async def decide(request: Request) -> JSONResponse:
        kg.explain(EXPLANATION)
        return JSONResponse({"decided": True})

    return decide
