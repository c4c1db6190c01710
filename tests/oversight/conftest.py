"""A loan service with a reviewer's desk, on FastAPI and on Starlette."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from kzai_guard.core.problems import DEFAULT_PROBLEM_BASE
from tests.oversight.service import SUBJECT_HEADER, Clock, bearer, build_app, make_guard


class Desk:
    """A running service: its guard, clock, audit records and a client."""

    def __init__(self, framework: str, **options: Any) -> None:
        self.clock = Clock()
        self.guard, self.sink = make_guard(clock=self.clock, **options)
        self.app = build_app(framework, self.guard)
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def routed(self, subject: str = "A-1") -> str:
        """A loan decision the person objected to: the id of its open review ticket."""
        self.guard.objections.record(subject)
        answer = self.client.post(f"/loans/{subject}")
        assert answer.status_code == 202, answer.text
        return str(answer.json()["review_id"])

    def automated(self, subject: str = "B-1") -> str:
        """A card-limit decision the AI made alone (medium autonomy): its decision id."""
        answer = self.client.post(f"/cards/{subject}")
        assert answer.status_code == 200, answer.text
        self.guard.explanations.flush()
        return str(answer.headers["ai-decision-id"])

    def get(self, path: str, token: str | None = "token-marat", **kwargs: Any) -> Any:
        headers = bearer(token) if token else {}
        return self.client.get("/ai-reviews" + path, headers=headers, **kwargs)

    def post(self, path: str, body: Any = None, token: str | None = "token-marat") -> Any:
        headers = bearer(token) if token else {}
        return self.client.post("/ai-reviews" + path, headers=headers, json=body or {})

    def person(self, path: str, subject: str) -> Any:
        return self.client.get("/ai-decisions" + path, headers={SUBJECT_HEADER: subject})

    def close(self) -> None:
        self.client.close()
        self.guard.close()


@pytest.fixture(params=["fastapi", "starlette"])
def desk(request: pytest.FixtureRequest) -> Iterator[Desk]:
    made = Desk(str(request.param))
    yield made
    made.close()


def problem_type(answer: Any) -> str:
    """The slug of a problem answer (after asserting it is one)."""
    assert answer.headers["content-type"] == "application/problem+json", answer.text
    return str(answer.json()["type"]).removeprefix(DEFAULT_PROBLEM_BASE)
