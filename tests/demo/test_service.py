"""The demo loan service: a refused withdrawal's grounds, and only a signed-in person acts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.demo.service import NOTICE_VERSION, DemoService, build_service
from kzai_guard.demo.tokens import PersonTokens

VICTIM = "KZ-1"
APPLICATION = {"monthly_income": 600_000, "monthly_debt": 0, "amount": 240_000, "term_months": 24}


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoService]:
    service = build_service(tmp_path)
    yield service
    service.guard.close()


def signed_in(tokens: PersonTokens, person: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens.issue(person)}"}


def test_a_restricted_withdrawal_answers_409_with_the_grounds_and_the_date(
    demo: DemoService,
) -> None:
    app, guard, tokens = demo
    until = datetime(2099, 1, 1, tzinfo=UTC)
    guard.consents.grant(
        VICTIM,
        "credit-scoring",
        NOTICE_VERSION,
        withdrawal_restriction=kg.WithdrawalRestriction("loan 77-1 is outstanding", until),
    )
    client = TestClient(app)
    response = client.delete(
        f"/consents/{VICTIM}/credit-scoring", headers=signed_in(tokens, VICTIM)
    )
    still_valid = guard.consents.is_valid(VICTIM, "credit-scoring", NOTICE_VERSION)
    assert (response.status_code, response.json()) == (
        409,
        {
            "withdrawn": 0,
            "grounds": ["loan 77-1 is outstanding"],
            "possible_from": "2099-01-01T00:00:00+00:00",
        },
    )
    assert still_valid is True


def test_a_forged_subject_header_gets_401_on_the_consent_decision_and_persons_routes(
    demo: DemoService,
) -> None:
    app, guard, tokens = demo
    # the victim consented and has a decision with an explanation and a review ticket
    victim = TestClient(app, headers=signed_in(tokens, VICTIM))
    assert victim.post(f"/consents/{VICTIM}/credit-scoring", json={}).status_code == 201
    decided = victim.post(f"/loans/{VICTIM}/decision", json=APPLICATION)
    assert decided.status_code == 200
    explanation = decided.headers["link"].split(";")[0].strip("<>")
    assert victim.post("/ai-decisions/objections", json={}).status_code == 201
    routed = victim.post(f"/loans/{VICTIM}/decision", json=APPLICATION)
    assert routed.status_code == 202

    forged = {"X-Subject-Id": VICTIM}
    bad_token = {"authorization": "Bearer " + PersonTokens().issue(VICTIM), **forged}
    attacker = TestClient(app)
    for headers in (forged, bad_token):
        answers = [
            attacker.post(f"/consents/{VICTIM}/credit-scoring", json={}, headers=headers),
            attacker.delete(f"/consents/{VICTIM}/credit-scoring", headers=headers),
            attacker.post(f"/loans/{VICTIM}/decision", json=APPLICATION, headers=headers),
            attacker.get(explanation, headers=headers),
            attacker.get(routed.headers["location"], headers=headers),
            attacker.delete("/ai-decisions/objections", headers=headers),
        ]
        assert [(a.status_code, a.headers.get("www-authenticate")) for a in answers] == [
            (401, "Bearer")
        ] * len(answers)

    assert guard.consents.is_valid(VICTIM, "credit-scoring", NOTICE_VERSION) is True
    assert guard.objections.active(VICTIM)


def test_a_signed_in_person_cannot_act_for_another(demo: DemoService) -> None:
    app, guard, tokens = demo
    victim = TestClient(app, headers=signed_in(tokens, VICTIM))
    assert victim.post(f"/consents/{VICTIM}/credit-scoring", json={}).status_code == 201
    decided = victim.post(f"/loans/{VICTIM}/decision", json=APPLICATION)
    explanation = decided.headers["link"].split(";")[0].strip("<>")

    other = TestClient(app, headers={**signed_in(tokens, "KZ-2"), "X-Subject-Id": VICTIM})
    assert other.get("/me").json() == {"person": "KZ-2"}
    assert other.post(f"/consents/{VICTIM}/credit-scoring", json={}).status_code == 403
    assert other.delete(f"/consents/{VICTIM}/credit-scoring").status_code == 403
    assert other.post(f"/loans/{VICTIM}/decision", json=APPLICATION).status_code == 403
    assert other.get(explanation).status_code == 404
    assert guard.consents.is_valid(VICTIM, "credit-scoring", NOTICE_VERSION) is True


def test_a_token_verifies_only_as_issued() -> None:
    tokens = PersonTokens(b"k" * 32)
    token = tokens.issue("KZ-1")
    body, signature = token.split(".")
    assert tokens.verify(token) == "KZ-1"
    assert PersonTokens(b"j" * 32).verify(token) is None
    assert tokens.verify(tokens.issue("KZ-2").split(".")[0] + "." + signature) is None
    for broken in ("", body, f"{body}.", f"{body}.!!", f"{body}.{signature}x", "é.é"):
        assert tokens.verify(broken) is None
    with pytest.raises(ValueError, match="at least 32 bytes"):
        PersonTokens(b"short")
