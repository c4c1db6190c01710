"""The subject resolvers: what a request's headers, path and user give as its subject."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.subjects import InvalidSubjectEncoding, RepeatedSubjectHeader
from kzai_guard.testing import memory_guard
from tests.samples import LOAN

_WANTED = b"x-subject-id"
_others = st.tuples(
    st.sampled_from([b"host", b"accept", b"x-subject", b"x-subject-idx", b"authorization"]),
    st.binary(max_size=20),
)


@given(
    before=st.lists(_others, max_size=5),
    after=st.lists(_others, max_size=5),
    values=st.lists(st.text(max_size=20).map(str.encode), max_size=3),
)
def test_from_header_takes_the_one_copy_and_refuses_two(
    before: list[tuple[bytes, bytes]], after: list[tuple[bytes, bytes]], values: list[bytes]
) -> None:
    resolve = kg.from_header("X-Subject-Id")
    scope = {"headers": [*before, *((_WANTED, v) for v in values), *after]}
    if len(values) > 1:
        with pytest.raises(RepeatedSubjectHeader, match="X-Subject-Id header came more than"):
            resolve(scope)
    elif values:
        assert resolve(scope) == values[0].decode()
    else:
        assert resolve(scope) is None


def test_from_header_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(InvalidSubjectEncoding):
        kg.from_header("X-Subject-Id")({"headers": [(_WANTED, b"\xff")]})


def test_every_refusal_of_a_resolver_is_an_unusable_subject() -> None:
    assert issubclass(InvalidSubjectEncoding, kg.UnusableSubject)
    assert issubclass(RepeatedSubjectHeader, kg.UnusableSubject)
    assert issubclass(kg.UnusableSubject, ValueError)


def test_a_custom_resolver_that_raises_unusable_subject_refuses_the_decision() -> None:
    def strict(scope: object) -> str | None:
        raise kg.UnusableSubject("the token names no customer")

    guard, sink = memory_guard(
        [kg.DecisionPolicy(name="p", significance="none", autonomy="high", risk="minimal")],
        subject=strict,
    )

    @guard.decision("p")
    async def decide(request: Request) -> JSONResponse:
        return JSONResponse({"done": True})

    app = Starlette(routes=[Route("/decide", decide, methods=["POST"])])
    guard.install(app)
    with TestClient(app) as client:
        response = client.post("/decide")
    assert response.status_code == 400
    assert response.json()["type"].endswith("subject-invalid")
    assert response.json()["detail"] == "The token names no customer."
    assert [(r.verdict, r.reason, r.subject) for r in sink.records] == [
        ("block", "subject-invalid", None)
    ]


def test_a_guard_given_no_subject_resolver_warns_that_it_trusts_the_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="kzai_guard"):
        implicit, _ = memory_guard([LOAN], contact="credit@example.kz")
        explicit, _ = memory_guard(
            [LOAN], contact="credit@example.kz", subject=kg.from_header("X-Subject-Id")
        )
    warnings = [r.getMessage() for r in caplog.records if "no subject= given" in r.getMessage()]
    assert len(warnings) == 1
    assert "X-Subject-Id request header, which only a gateway you control may set" in warnings[0]
    implicit.close()
    explicit.close()
