"""The subject resolvers: what a request's headers, path and user give as its subject."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize("name", ["Ā", "X Subject", "X-Subject:", "", "X-Subject-Id\n"])
def test_from_header_refuses_a_name_that_is_not_an_ascii_header_name(name: str) -> None:
    with pytest.raises(kg.ConfigurationError, match="not a header name"):
        kg.from_header(name)


def test_a_policy_file_with_a_subject_header_that_is_not_a_header_name_names_the_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(
        '[guard]\nprofile = "kz"\ncontact = "support@example.kz"\nsubject_header = "Ā"\n',
        encoding="utf-8",
    )
    with pytest.raises(kg.ConfigurationError, match=r"subject_header.*not a header name"):
        kg.Guard.from_file(path, audit=kg.MemorySink(), store=":memory:")


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


def test_a_guard_given_no_subject_resolver_refuses_to_start_naming_the_choices() -> None:
    with pytest.raises(kg.ConfigurationError) as refused:
        memory_guard([LOAN], contact="credit@example.kz")
    message = str(refused.value)
    for choice in ("from_path_param", "from_user", "a callable", "from_header"):
        assert choice in message
    assert "gateway that strips that header" in message


def test_a_guard_given_something_other_than_a_resolver_refuses_to_start() -> None:
    with pytest.raises(kg.ConfigurationError, match=r"must be a resolver .* got str"):
        memory_guard([LOAN], contact="credit@example.kz", subject="X-Subject-Id")


def test_a_policy_file_without_subject_header_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "kzai-guard.toml"
    path.write_text(
        '[guard]\ncontact = "c"\n\n[[policy]]\nname = "p"\nsignificance = "none"\n'
        'autonomy = "high"\nrisk = "minimal"\n',
        encoding="utf-8",
    )
    with pytest.raises(
        kg.ConfigurationError, match=r"kzai-guard\.toml: Guard\(subject=\.\.\.\) is required"
    ):
        kg.Guard.from_file(path, store="memory://", audit=kg.MemorySink())
