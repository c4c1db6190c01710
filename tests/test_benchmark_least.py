"""The least guard of the hot-path benchmark decides for real: it is a floor only if it does the
work the rules require (allow with consent, refuse without, headers, explanation, record)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from benchmarks import apps, least
from benchmarks.asgi_driver import Driver, http_scope


def _serve(built: apps.Built, headers: dict[str, str] | list[tuple[str, str]]) -> Driver:
    scope = http_scope(apps.PATH, {})
    pairs = headers.items() if isinstance(headers, dict) else headers
    scope["headers"] = [(k.lower().encode(), v.encode()) for k, v in pairs]
    driver = Driver(built.app, scope)
    asyncio.run(driver.call())
    return driver


@pytest.mark.parametrize("framework", apps.FRAMEWORKS)
def test_an_allowed_decision_carries_its_headers_explanation_and_record(framework: Any) -> None:
    built = least.build(framework)
    driver = _serve(built, apps.HEADERS)
    assert driver.last_status == 200
    headers = dict(driver.last_headers)
    decision_id = headers[b"ai-decision-id"].decode()
    assert headers[b"ai-disclosure"].startswith(b"mode=machine-generated")
    link = f'</ai-decisions/{decision_id}/explanation>; rel="explanation"'
    assert headers[b"link"] == link.encode()
    guard = built.guard
    assert b"Application approved" in guard.explanations[decision_id]
    (record,) = guard.records
    assert record[0] == decision_id
    assert record[5] == guard.pseudonym(apps.SUBJECT) != apps.SUBJECT
    assert apps.SUBJECT not in repr(record)


@pytest.mark.parametrize(
    "headers",
    [
        {apps.SUBJECT_HEADER: "subject-without-consent"},
        {},
        [(apps.SUBJECT_HEADER, apps.SUBJECT), (apps.SUBJECT_HEADER, "someone-else")],
        {apps.SUBJECT_HEADER: apps.SUBJECT, "AI-Objection": "?1"},
    ],
    ids=["no-consent", "no-subject", "repeated-subject", "objection"],
)
def test_a_decision_without_a_basis_is_refused_and_leaves_nothing(headers: Any) -> None:
    built = least.build("starlette")
    driver = _serve(built, headers)
    assert driver.last_status == 403
    assert not built.guard.records
    assert not built.guard.explanations
