"""Any request to the person's routes is answered with a success or an RFC 9457 problem.

Arbitrary paths under the prefix, arbitrary objection bodies and query strings, and any
``?lang=`` on the explanation route: never a server error, never a body of another kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from urllib.parse import quote

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.http.asgi import raw_request
from tests.http.conftest import Service
from tests.strategies import json_values

PREFIX = "/ai-decisions"
FIXTURES = [HealthCheck.function_scoped_fixture]
JSON_VALUES = json_values("loan_approval", "offers", "", max_leaves=8)


def request(
    service: Service, method: str, path: str, query: bytes = b"", body: bytes = b""
) -> tuple[int, bytes]:
    status, headers, content = anyio.run(
        partial(
            raw_request,
            service.app,
            path,
            [(b"x-subject-id", b"A-1"), (b"content-type", b"application/json")],
            method=method,
            query=query,
            body=body,
        )
    )
    assert status != 500
    if 200 <= status < 300:
        assert headers[b"content-type"] == b"application/json"
        json.loads(content)
    else:
        assert headers[b"content-type"] == b"application/problem+json"
        assert json.loads(content)["status"] == status
    return status, content


@pytest.fixture
def decision_id(service: Service) -> Iterator[str]:
    """A decision about A-1 with an explanation, so that the explanation route answers."""
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    response = service.decide("loan")
    assert response.status_code == 200
    yield response.headers["ai-decision-id"]


@settings(max_examples=150, suppress_health_check=FIXTURES)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD"]),
    tail=st.text(max_size=40)
    | st.sampled_from(["objections", "reviews/", "reviews/x", "x/explanation", "/", "//"]),
)
def test_any_path_under_the_prefix_is_a_success_or_a_problem(
    service: Service, method: str, tail: str
) -> None:
    request(service, method, f"{PREFIX}/{tail}")


@settings(max_examples=200, suppress_health_check=FIXTURES)
@given(
    body=st.binary(max_size=5000)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({"policy": JSON_VALUES}).map(lambda v: json.dumps(v).encode())
)
@example(body=b'{"policy": ["loan_approval"]}')
def test_any_objection_body_is_a_success_or_a_problem(service: Service, body: bytes) -> None:
    request(service, "POST", f"{PREFIX}/objections", body=body)


@settings(max_examples=150, suppress_health_check=FIXTURES)
@given(
    query=st.binary(max_size=200)
    | st.text().map(lambda t: f"policy={quote(t)}".encode())
    | st.sampled_from([b"policy=loan_approval", b"policy=", b"policy", b"policy=a&policy=b"])
)
def test_any_objection_withdrawal_query_is_a_success_or_a_problem(
    service: Service, query: bytes
) -> None:
    request(service, "DELETE", f"{PREFIX}/objections", query=query)


@settings(max_examples=150, suppress_health_check=FIXTURES)
@given(
    query=st.binary(max_size=200)
    | st.text().map(lambda t: f"lang={quote(t)}".encode())
    | st.sampled_from([b"lang=kk", b"lang=ru", b"lang=en", b"lang=", b"lang=xx&lang=ru"])
)
def test_any_explanation_language_is_the_explanation_or_a_problem(
    service: Service, decision_id: str, query: bytes
) -> None:
    status, content = request(service, "GET", f"{PREFIX}/{decision_id}/explanation", query=query)
    assert status == 200
    assert json.loads(content)["decision_id"] == decision_id
