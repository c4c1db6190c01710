"""Every rule of the law, through the real ASGI app, on FastAPI and on Starlette."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import kzai_guard as kg
from tests.http.conftest import Service
from tests.samples import GATEWAY_SUBJECT

PROBLEM = "application/problem+json"


def problem_type(response: object) -> str:
    return str(response.json()["type"]).rsplit(":", 1)[-1]  # type: ignore[attr-defined]


def test_a_solely_automated_significant_decision_without_consent_is_blocked(
    service: Service,
) -> None:
    response = service.decide("loan")
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:kzai-guard:problem:no-legal-basis"
    assert body["status"] == 403
    assert body["decision_id"] == response.headers["ai-decision-id"]
    [record] = service.sink.of_kind(kg.EventKind.DECISION)
    assert (record.verdict, record.reason, record.id) == (
        "block",
        "no-legal-basis",
        body["decision_id"],
    )


def test_with_consent_the_decision_is_allowed_disclosed_and_explained(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    response = service.decide("loan")
    assert response.status_code == 200
    assert response.json()["approved"] is True
    assert response.headers["ai-disclosure"] == (
        'mode=machine-generated, model="scorer/1.4", provider="Example Bank"'
    )
    decision_id = response.headers["ai-decision-id"]
    assert (
        response.headers["link"] == f'</ai-decisions/{decision_id}/explanation>; rel="explanation"'
    )
    explanation = service.client.get(
        f"/ai-decisions/{decision_id}/explanation", headers={"X-Subject-Id": "A-1"}
    ).json()
    assert explanation["summary"] == "Заявка одобрена"
    assert explanation["contact"] == "support@bank.kz"
    assert explanation["model"]["version"] == "1.4"
    assert "/ai-decisions/objections" in explanation["how_to_object"]
    [record] = service.sink.of_kind(kg.EventKind.DECISION)
    assert (record.verdict, record.basis, record.reason) == ("allow", "consent", "consent")
    assert record.explanation_digest is not None and len(record.explanation_digest) == 64


def test_sync_endpoints_are_guarded_the_same_way(service: Service) -> None:
    assert service.decide("loan-sync").status_code == 403
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    response = service.decide("loan-sync")
    assert response.status_code == 200
    assert "ai-decision-id" in response.headers


def test_the_explanation_is_served_in_the_language_asked_with_fallback(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    decision_id = service.decide("loan").headers["ai-decision-id"]
    url = f"/ai-decisions/{decision_id}/explanation"
    english = service.client.get(url + "?lang=en", headers={"X-Subject-Id": "A-1"}).json()
    kazakh = service.client.get(url + "?lang=kk", headers={"X-Subject-Id": "A-1"}).json()
    assert (english["summary"], english["summary_fallback"]) == ("Application approved", False)
    assert (kazakh["summary_language"], kazakh["summary_fallback"]) == ("ru", True)


def test_an_explanation_is_given_to_its_person_only(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    decision_id = service.decide("loan").headers["ai-decision-id"]
    url = f"/ai-decisions/{decision_id}/explanation"
    assert service.client.get(url, headers={"X-Subject-Id": "A-2"}).status_code == 404
    assert service.client.get(url).status_code == 400
    assert (
        service.client.get(
            "/ai-decisions/nope/explanation", headers={"X-Subject-Id": "A-1"}
        ).status_code
        == 404
    )


def test_a_consent_for_another_notice_version_does_not_count(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    assert service.decide("loan-v2").status_code == 403
    service.guard.consents.grant("A-1", "credit-scoring", "2026-02")
    assert service.decide("loan-v2").status_code == 200


def test_an_expired_consent_does_not_count(service: Service) -> None:
    from datetime import UTC, datetime

    service.guard.consents.grant(
        "A-1", "credit-scoring", "2026-01", expires_at=datetime.now(UTC) + timedelta(milliseconds=1)
    )
    import time

    time.sleep(0.01)
    assert service.decide("loan").status_code == 403


def test_a_withdrawal_blocks_the_very_next_decision(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    assert service.decide("loan").status_code == 200
    service.guard.consents.withdraw("A-1", "credit-scoring")
    assert service.decide("loan").status_code == 403


def test_a_stored_objection_routes_to_a_human_with_a_ticket(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    service.guard.objections.record("A-1")
    response = service.decide("loan")
    assert response.status_code == 202
    body = response.json()
    assert body["type"] == "urn:kzai-guard:problem:human-review"
    review_id = body["review_id"]
    assert response.headers["location"] == f"/ai-decisions/reviews/{review_id}"
    assert body["review"]["status"] == "open" and body["review"]["reason"] == "objection"
    status = service.client.get(response.headers["location"], headers={"X-Subject-Id": "A-1"})
    assert status.json()["status"] == "open"
    assert (
        service.client.get(
            response.headers["location"], headers={"X-Subject-Id": "A-2"}
        ).status_code
        == 404
    )
    ticket = service.guard.reviews.get(review_id)
    assert (ticket.decision_id, ticket.reason) == (body["decision_id"], "objection")


def test_the_request_objection_signal_routes_to_a_human(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    assert service.decide("loan", **{"AI-Objection": "?1"}).status_code == 202
    assert service.decide("loan", **{"AI-Objection": "?0"}).status_code == 200
    assert service.decide("loan", **{"AI-Objection": "yes"}).status_code == 200


def test_an_objection_does_not_stop_a_decision_the_person_cannot_refuse(service: Service) -> None:
    response = service.decide("tax", **{"AI-Objection": "?1"})
    assert response.status_code == 200
    [record] = service.sink.of_kind(kg.EventKind.DECISION)
    assert record.basis == "statutory"


def test_an_objection_routes_a_refusable_statutory_decision(service: Service) -> None:
    assert service.decide("benefit").status_code == 200
    assert service.decide("benefit", **{"AI-Objection": "?1"}).status_code == 202


def test_a_person_can_object_and_withdraw_over_http(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    objected = service.client.post(
        "/ai-decisions/objections",
        json={"policy": "loan_approval"},
        headers={"X-Subject-Id": "A-1"},
    )
    assert objected.status_code == 201
    assert service.decide("loan").status_code == 202
    withdrawn = service.client.delete(
        "/ai-decisions/objections?policy=loan_approval", headers={"X-Subject-Id": "A-1"}
    )
    assert withdrawn.json() == {"withdrawn": 1, "policy": "loan_approval"}
    assert service.decide("loan").status_code == 200


def test_a_vulnerable_person_is_routed_to_a_human(service: Service) -> None:
    service.guard.consents.grant("V-9", "credit-scoring", "2026-01")
    response = service.decide("loan", subject="V-9")
    assert response.status_code == 202
    assert response.json()["review"]["reason"] == "vulnerable-subject"


def test_low_autonomy_needs_a_human_and_routes_without_one(service: Service) -> None:
    service.guard.consents.grant("A-1", "hiring", "2026-01")
    response = service.decide("hiring")
    assert (response.status_code, response.json()["review"]["reason"]) == (202, "human-required")


def test_an_authenticated_reviewer_makes_the_decision_and_is_recorded(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(reviewer="officer-7")
    response = service.decide("hiring")
    assert response.status_code == 200
    assert response.headers["ai-disclosure"].startswith("mode=ai-originated")
    [record] = service.sink.of_kind(kg.EventKind.DECISION)
    assert (record.basis, record.reviewer) == (
        "human",
        service.guard.auditor.reviewer_ref("officer-7"),
    )


def test_a_reviewer_header_sent_by_the_client_is_not_a_human_decision(service: Service) -> None:
    spoofed = {
        "X-Reviewer": "officer-7",
        "X-User": "officer-7",
        "Authorization": "Bearer officer-7",
        "AI-Reviewer": "officer-7",
    }
    response = service.decide("hiring", **spoofed)
    assert response.status_code == 202
    [record] = service.sink.of_kind(kg.EventKind.DECISION)
    assert record.reviewer is None


def test_the_kill_switch_suspends_at_once_and_resumes(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    service.guard.switches.suspend("loan_approval", by="risk-officer", reason="drift")
    response = service.decide("loan")
    assert (response.status_code, problem_type(response)) == (503, "suspended")
    service.guard.switches.resume("loan_approval", by="risk-officer")
    assert service.decide("loan").status_code == 200
    kinds = [r.kind for r in service.sink.records if r.kind.value.startswith("switch")]
    assert kinds == [kg.EventKind.SWITCH_SUSPENDED, kg.EventKind.SWITCH_RESUMED]


def test_the_kill_switch_stops_a_monitored_decision_type_too(service: Service) -> None:
    service.guard.switches.suspend("loan_monitor", by="risk-officer", reason="drift")
    response = service.decide("monitor")
    assert (response.status_code, problem_type(response)) == (503, "suspended")
    assert "approved" not in response.text
    [record] = service.sink.of_kind(kg.EventKind.DECISION)
    assert (record.mode, record.verdict, record.reason) == ("monitor", "block", "suspended")
    service.guard.switches.resume("loan_monitor", by="risk-officer")
    assert service.decide("monitor").status_code == 200


def test_a_significant_decision_without_explanation_is_withheld(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    response = service.decide("loan-unexplained")
    assert (response.status_code, problem_type(response)) == (500, "explanation-missing")
    [record] = service.sink.of_kind(kg.EventKind.DECISION_WITHHELD)
    assert record.detail == "no explanation was given"


def test_an_invalid_explanation_withholds_the_decision(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    response = service.decide("loan-bad-explanation")
    assert (response.status_code, problem_type(response)) == (500, "explanation-invalid")
    assert "approved" not in response.text


def test_an_explanation_without_its_main_factors_withholds_the_decision(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    response = service.decide("loan-no-factors")
    assert (response.status_code, problem_type(response)) == (500, "explanation-invalid")
    assert "approved" not in response.text
    [record] = service.sink.of_kind(kg.EventKind.DECISION_WITHHELD)
    assert record.detail == "explanation lacks factors"
    assert service.guard.explanation(record.id) is None


def test_monitor_mode_delivers_an_explanation_without_factors_and_flags_it(
    service: Service,
) -> None:
    response = service.decide("monitor-no-factors")
    assert response.status_code == 200
    [record] = service.sink.of_kind(kg.EventKind.DECISION)
    assert record.detail == "explanation lacks factors"


def test_monitor_mode_reports_but_blocks_nothing(service: Service) -> None:
    response = service.decide("monitor")
    assert response.status_code == 200
    assert service.decide("monitor-unexplained").status_code == 200
    records = service.sink.of_kind(kg.EventKind.DECISION)
    assert [(r.mode, r.verdict, r.reason) for r in records] == [
        ("monitor", "block", "no-legal-basis"),
        ("monitor", "block", "no-legal-basis"),
    ]
    assert records[1].detail == "no explanation was given"


def test_a_non_significant_decision_is_allowed_with_disclosure_only(service: Service) -> None:
    response = service.decide("offers")
    assert response.status_code == 200
    assert response.headers["ai-disclosure"].startswith("mode=machine-generated")
    assert "link" not in response.headers


def test_contract_necessity_counts_only_in_the_eu_profile(make_service) -> None:  # type: ignore[no-untyped-def]
    kz = make_service(profile="kz")
    eu = make_service(profile="eu")
    strictest = make_service(profile="strictest")
    assert kz.decide("contract").status_code == 202
    assert eu.decide("contract").status_code == 200
    assert strictest.decide("contract").status_code == 202


def test_a_reviewer_completes_a_ticket_and_it_is_recorded(service: Service) -> None:
    service.guard.objections.record("A-1")
    review_id = service.decide("loan").json()["review_id"]
    service.guard.reviews.complete(
        review_id, reviewer=kg.Reviewer(id="officer-7"), outcome=kg.ReviewOutcome.APPROVED
    )
    status = service.client.get(
        f"/ai-decisions/reviews/{review_id}", headers={"X-Subject-Id": "A-1"}
    )
    assert (status.json()["status"], status.json()["outcome"]) == ("completed", "approved")
    [record] = service.sink.of_kind(kg.EventKind.REVIEW_COMPLETED)
    assert (record.reviewer, record.review_id) == (
        service.guard.auditor.reviewer_ref("officer-7"),
        review_id,
    )


def test_a_ticket_unanswered_past_its_deadline_says_overdue(framework: str) -> None:
    now = [datetime(2026, 3, 19, 9, 0, tzinfo=UTC)]  # Thursday; Nauryz follows
    service = Service(framework, clock=lambda: now[0])
    service.guard.objections.record("A-1")
    review_id = service.decide("loan").json()["review_id"]

    def ticket() -> dict[str, object]:
        response = service.client.get(
            f"/ai-decisions/reviews/{review_id}", headers={"X-Subject-Id": "A-1"}
        )
        return dict(response.json())

    before = ticket()
    now[0] = datetime(2026, 3, 27, 19, 0, 1, tzinfo=UTC)  # just past the end of Friday 27th
    after = ticket()
    assert (before["deadline"], before["overdue"], after["overdue"]) == (
        "2026-03-27T19:00:00+00:00",
        False,
        True,
    )
    assert [t.id for t in service.guard.reviews.overdue()] == [review_id]
    service.guard.reviews.complete(
        review_id, reviewer=kg.Reviewer(id="officer-7"), outcome="approved"
    )
    assert (ticket()["overdue"], service.guard.reviews.overdue()) == (False, [])
    service.guard.close()


def test_a_refused_withdrawal_leaves_the_consent_counting_until_the_restriction_ends(
    framework: str,
) -> None:
    now = [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    service = Service(framework, clock=lambda: now[0])
    until = datetime(2026, 6, 30, tzinfo=UTC)
    service.guard.consents.grant(
        "A-1",
        "credit-scoring",
        "2026-01",
        withdrawal_restriction=kg.WithdrawalRestriction("loan 77-1 is outstanding", until),
    )
    with pytest.raises(kg.WithdrawalRestricted) as refused:
        service.guard.consents.withdraw("A-1", "credit-scoring")
    still = service.decide("loan").status_code
    [record] = service.sink.of_kind(kg.EventKind.CONSENT_WITHDRAWAL_REFUSED)

    now[0] = until
    service.guard.consents.withdraw("A-1", "credit-scoring")
    after = service.decide("loan")

    assert (refused.value.until, still) == (until, 200)
    assert (record.purpose, record.detail) == (
        "credit-scoring",
        "the consent cannot be withdrawn until 2026-06-30T00:00:00+00:00: loan 77-1 is outstanding",
    )
    assert (after.status_code, problem_type(after)) == (403, "no-legal-basis")
    service.guard.close()


def test_the_audit_trail_being_down_refuses_significant_decisions(service: Service) -> None:
    service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
    service.sink.fail = True
    response = service.decide("loan")
    assert (response.status_code, problem_type(response)) == (503, "audit-unavailable")
    assert response.headers["retry-after"] == "30"


def test_no_audit_record_holds_a_raw_subject(service: Service) -> None:
    service.guard.consents.grant("A-1-secret-id", "credit-scoring", "2026-01")
    service.decide("loan", subject="A-1-secret-id")
    service.guard.objections.record("A-1-secret-id")
    service.decide("loan", subject="A-1-secret-id")
    assert len(service.sink.records) >= 5
    for record in service.sink.records:
        assert "A-1-secret-id" not in repr(record.as_dict())


def test_the_guard_closes_when_the_server_shuts_down(framework: str) -> None:
    from starlette.testclient import TestClient

    service = Service(framework)
    with TestClient(service.app) as client:
        service.guard.consents.grant("A-1", "credit-scoring", "2026-01")
        assert client.post("/loan/A-1", headers={"X-Subject-Id": "A-1"}).status_code == 200
    assert service.guard.closed is True
    service.close()


def test_a_non_significant_policy_fails_closed_unless_it_opts_out(framework: str) -> None:
    from starlette.testclient import TestClient

    from kzai_guard.testing import memory_guard

    closed = kg.DecisionPolicy(name="offers", significance="none", autonomy="high", risk="minimal")
    opened = closed.model_copy(update={"name": "offers_open", "audit_fail_open": True})
    guard, sink = memory_guard([closed, opened], subject=GATEWAY_SUBJECT)
    calls: list[str] = []

    @guard.decision("offers")
    def offers() -> dict[str, bool]:
        calls.append("offers")
        return {"ok": True}

    @guard.decision("offers_open")
    def offers_open() -> dict[str, bool]:
        calls.append("offers_open")
        return {"ok": True}

    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    if framework == "fastapi":
        app: Any = FastAPI()
        app.post("/offers")(offers)
        app.post("/offers-open")(offers_open)
    else:
        app = Starlette(
            routes=[
                Route("/offers", lambda r: JSONResponse(offers()), methods=["POST"]),
                Route("/offers-open", lambda r: JSONResponse(offers_open()), methods=["POST"]),
            ]
        )
    guard.install(app)
    sink.fail = True
    client = TestClient(app, raise_server_exceptions=False)
    refused = client.post("/offers", headers={"X-Subject-Id": "A-1"})
    assert refused.status_code == 503
    assert refused.headers["ai-decision-id"] == refused.json()["decision_id"]
    assert client.post("/offers-open", headers={"X-Subject-Id": "A-1"}).status_code == 200
    assert calls == ["offers_open"]
    guard.close()


def test_monitor_mode_does_not_block_when_the_audit_trail_is_down(service: Service) -> None:
    service.sink.fail = True
    response = service.decide("monitor")
    assert response.status_code == 200
    assert response.json()["approved"] is True
