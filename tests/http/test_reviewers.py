"""Who counts as the human decision-maker, behind Starlette's own authentication."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.reviewers import needs_user, reviewer_from_auth
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

HIRING = kg.DecisionPolicy(
    name="hiring",
    purpose="hiring",
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.LOW,
    risk=kg.RiskClass.HIGH,
    model=kg.ModelInfo(name="screener", version="3"),
)


class Employee(BaseUser):
    def __init__(self, employee_id: str, name: str) -> None:
        self.employee_id = employee_id
        self.name = name

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return self.employee_id


STAFF: dict[str, tuple[Employee, list[str]]] = {
    "token-officer": (Employee("E-7", "Aigerim"), ["authenticated", "hr-officer"]),
    "token-clerk": (Employee("E-3", "Dana"), ["authenticated"]),
    "token-reviewer": (Employee("E-9", "Marat"), ["authenticated", "ai-reviewer"]),
}


class BearerTokens(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = conn.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in STAFF:
            return None
        user, scopes = STAFF[token]
        return AuthCredentials(scopes), user


def hr_officer(scope: Mapping[str, Any]) -> kg.Reviewer | None:
    """The bank's own rule: HR officers decide, named by their personnel number."""
    if "hr-officer" not in scope["auth"].scopes:
        return None
    return kg.Reviewer(id=f"personnel:{scope['user'].employee_id}")


def hiring_client(guard: kg.Guard) -> TestClient:
    @guard.decision("hiring")
    async def screen(request: Request) -> JSONResponse:
        kg.explain(EXPLANATION)
        return JSONResponse({"shortlisted": True})

    app = Starlette(
        routes=[Route("/candidates/{candidate}", screen, methods=["POST"])],
        middleware=[Middleware(AuthenticationMiddleware, backend=BearerTokens())],
    )
    guard.install(app)
    return TestClient(app, raise_server_exceptions=False)


def screen(client: TestClient, token: str) -> Any:
    return client.post(
        "/candidates/C-1", headers={"X-Subject-Id": "C-1", "Authorization": f"Bearer {token}"}
    )


def test_a_reviewer_found_by_the_apps_resolver_decides_and_is_recorded() -> None:
    guard, sink = memory_guard(
        [HIRING], reviewer=hr_officer, contact="hr@example.kz", subject=GATEWAY_SUBJECT
    )
    client = hiring_client(guard)

    response = screen(client, "token-officer")

    assert response.status_code == 200
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert (record.verdict, record.reason, record.basis, record.reviewer) == (
        "allow",
        "human-decision",
        "human",
        guard.auditor.reviewer_ref("personnel:E-7"),
    )
    guard.close()


def test_a_signed_in_user_without_the_reviewer_scope_is_no_human_decision() -> None:
    guard, sink = memory_guard([HIRING], contact="hr@example.kz", subject=GATEWAY_SUBJECT)
    client = hiring_client(guard)

    reviewer = screen(client, "token-reviewer")
    clerk = screen(client, "token-clerk")

    assert reviewer.status_code == 200
    assert (clerk.status_code, clerk.json()["review"]["reason"]) == (202, "human-required")
    records = sink.of_kind(kg.EventKind.DECISION)
    assert [(r.verdict, r.reason, r.reviewer) for r in records] == [
        ("allow", "human-decision", guard.auditor.reviewer_ref("E-9")),
        ("route", "human-required", None),
    ]
    guard.close()


def test_an_apps_resolver_is_asked_even_where_no_middleware_set_a_user() -> None:
    def from_client_certificate(scope: Mapping[str, Any]) -> kg.Reviewer | None:
        """A resolver that reads what the TLS terminator established, not scope["user"]."""
        return kg.Reviewer(id="cert:E-5") if scope.get("client_cert") == "E-5" else None

    guard, sink = memory_guard(
        [HIRING], reviewer=from_client_certificate, contact="hr@example.kz", subject=GATEWAY_SUBJECT
    )

    @guard.decision("hiring")
    async def screen_unauthenticated(request: Request) -> JSONResponse:
        kg.explain(EXPLANATION)
        return JSONResponse({"shortlisted": True})

    app = Starlette(routes=[Route("/candidates/{candidate}", screen_unauthenticated)])
    guard.install(app)

    async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "client_cert": "E-5"}, receive, send)

    response = TestClient(with_certificate).get("/candidates/1", headers={"X-Subject-Id": "C-1"})

    assert response.status_code == 200
    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert (record.reason, record.reviewer) == (
        "human-decision",
        guard.auditor.reviewer_ref("cert:E-5"),
    )
    guard.close()


def test_only_the_default_resolver_is_known_to_need_a_user() -> None:
    assert (needs_user(reviewer_from_auth()), needs_user(hr_officer)) == (True, False)
