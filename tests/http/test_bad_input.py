"""Hostile and malformed requests: a clear problem response, never a crash, nothing lost."""

from __future__ import annotations

from functools import partial

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kzai_guard as kg
from tests.http.asgi import raw_request
from tests.http.conftest import Service
from tests.samples import GATEWAY_SUBJECT


def call(
    service: Service, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int | None, dict[bytes, bytes], bytes]:
    return anyio.run(raw_request, service.app, path, headers)


def test_a_request_without_a_subject_is_a_problem(service: Service) -> None:
    response = service.decide("loan", subject=None)
    assert response.status_code == 400
    assert response.json()["type"].endswith("subject-missing")
    assert response.json()["decision_id"]


def test_a_huge_subject_is_refused(service: Service) -> None:
    response = service.decide("loan", subject="A" * 5000)
    assert (response.status_code, response.json()["type"].rsplit(":", 1)[-1]) == (
        400,
        "subject-invalid",
    )


def test_a_subject_header_that_is_not_utf8_is_refused(service: Service) -> None:
    status, headers, body = call(service, "/loan/x", [(b"x-subject-id", b"\xff\xfeA-1")])
    assert status == 400
    assert headers[b"content-type"] == b"application/problem+json"
    assert b"subject-invalid" in body


def test_a_subject_with_control_characters_is_refused(service: Service) -> None:
    status, _, body = call(service, "/loan/x", [(b"x-subject-id", b"A-1\x01")])
    assert status == 400 and b"subject-invalid" in body


def test_a_non_utf8_objection_header_is_no_signal(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    status, _, _ = call(
        service, "/loan/x", [(b"x-subject-id", b"A-1"), (b"ai-objection", b"\xff?1")]
    )
    assert status == 200


def test_an_unknown_policy_name_fails_at_decoration_with_the_known_names() -> None:
    guard, _ = kg.testing.memory_guard(
        [kg.DecisionPolicy(name="a", significance="none", autonomy="high", risk="minimal")],
        subject=GATEWAY_SUBJECT,
    )
    with pytest.raises(kg.ConfigurationError, match=r"no such policy; known: \['a'\]"):
        guard.decision("missing")
    guard.close()


def test_an_unknown_route_under_the_prefix_is_a_404_problem(service: Service) -> None:
    response = service.client.get("/ai-decisions/whatever", headers={"X-Subject-Id": "A-1"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_a_bad_objection_body_is_a_400_problem(service: Service) -> None:
    headers = {"X-Subject-Id": "A-1"}
    not_json = service.client.post("/ai-decisions/objections", content=b"{", headers=headers)
    huge = service.client.post("/ai-decisions/objections", content=b"x" * 10_000, headers=headers)
    unknown = service.client.post(
        "/ai-decisions/objections", json={"policy": "nope"}, headers=headers
    )
    assert [not_json.status_code, huge.status_code, unknown.status_code] == [400, 400, 400]
    assert service.guard.objections.active("A-1") == []


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"loan_approval"',
        b"42",
        b"null",
        b'{"polcy": "loan_approval"}',
        b'{"policy": ["loan_approval"]}',
        b'{"policy": {"a": 1}}',
        b'{"policy": 7}',
    ],
)
def test_an_objection_body_of_another_shape_is_a_400_problem_and_records_nothing(
    service: Service, body: bytes
) -> None:
    response = service.client.post(
        "/ai-decisions/objections", content=body, headers={"X-Subject-Id": "A-1"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert service.guard.objections.active("A-1") == []


def test_an_objection_whose_client_leaves_mid_body_records_nothing(service: Service) -> None:
    status, _, _ = anyio.run(
        partial(
            raw_request,
            service.app,
            "/ai-decisions/objections",
            [(b"x-subject-id", b"A-1")],
            messages=[
                {"type": "http.request", "body": b'{"policy": "loan', "more_body": True},
                {"type": "http.disconnect"},
            ],
        )
    )
    assert status is None
    assert service.guard.objections.active("A-1") == []


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    subject=st.binary(max_size=300),
    objection=st.binary(max_size=20),
    path_tail=st.text(st.characters(categories=("L", "N")), min_size=1, max_size=20),
)
def test_any_header_bytes_get_a_decision_or_a_problem_never_a_crash(
    service: Service, subject: bytes, objection: bytes, path_tail: str
) -> None:
    before = len(service.sink.records)
    status, headers, body = call(
        service, f"/loan/{path_tail}", [(b"x-subject-id", subject), (b"ai-objection", objection)]
    )
    assert status in (202, 400, 403)
    assert headers[b"content-type"] == b"application/problem+json"
    if status != 400:
        assert len(service.sink.records) > before
    assert subject not in body or len(subject) < 4


def test_a_subject_header_sent_twice_is_refused_and_recorded(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    service.guard.consents.grant("B-2", "credit-scoring", "2026-01")
    status, headers, body = call(
        service, "/loan/x", [(b"x-subject-id", b"A-1"), (b"x-subject-id", b"B-2")]
    )
    assert status == 400 and headers[b"content-type"] == b"application/problem+json"
    problem = orjson.loads(body)
    assert problem["type"].endswith("subject-invalid")
    assert problem["detail"] == "The X-Subject-Id header came more than once."
    blocked = [r for r in service.sink.records if r.id == problem["decision_id"]]
    assert [(r.verdict, r.reason, r.subject) for r in blocked] == [
        ("block", "subject-invalid", None)
    ]


def test_a_subject_header_sent_twice_on_the_persons_routes_is_refused(service: Service) -> None:
    status, _, body = call(
        service,
        "/ai-decisions/objections",
        [(b"x-subject-id", b"A-1"), (b"x-subject-id", b"A-1")],
    )
    assert status == 400 and b"subject-invalid" in body
    assert not service.guard.facts.state("A-1").objected("loan")
