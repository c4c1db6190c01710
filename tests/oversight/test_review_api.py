"""The reviewer's HTTP API, route by route, on FastAPI and Starlette."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

import kzai_guard as kg
from tests.oversight.conftest import Desk, problem_type
from tests.oversight.service import CARD, EXPLANATION, LOAN, bearer, build_app, make_guard


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/queue"),
        ("GET", "/tickets/{id}"),
        ("POST", "/tickets/{id}/claim"),
        ("POST", "/tickets/{id}/release"),
        ("POST", "/tickets/{id}/decision"),
        ("POST", "/tickets/{id}/escalation"),
        ("POST", "/decisions/{decision}/override"),
    ],
)
def test_every_route_refuses_a_forged_reviewer_header_with_401_and_a_non_reviewer_with_403(
    desk: Desk, method: str, path: str
) -> None:
    review_id = desk.routed()
    url = "/ai-reviews" + path.format(id=review_id, decision=desk.automated())
    forged = {"X-Reviewer": "E-9", "X-User": "E-9", "X-Auth-Scopes": "ai-reviewer"}

    unsigned = desk.client.request(method, url, headers=forged, json={})
    clerk = desk.client.request(
        method, url, headers={**forged, "Authorization": "Bearer token-clerk"}, json={}
    )

    assert (unsigned.status_code, problem_type(unsigned)) == (401, "reviewer-required")
    assert unsigned.headers["www-authenticate"] == 'Bearer realm="ai-reviews"'
    assert (clerk.status_code, problem_type(clerk)) == (403, "reviewer-forbidden")
    assert desk.guard.store.review_work([review_id]) == {}
    assert desk.sink.of_kind(kg.EventKind.REVIEW_CLAIMED) == []
    assert desk.sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN) == []


def test_queue_lists_open_tickets_by_deadline_with_filters_and_pages(desk: Desk) -> None:
    first = desk.routed("A-1")
    desk.clock.advance(days=1)
    second = desk.routed("A-2")

    everything = desk.get("/queue").json()
    by_policy = desk.get("/queue?policy=card_limit").json()
    paged = desk.get("/queue?per_page=1").json()
    page_two = desk.get("/queue?per_page=1&page=2").json()

    assert [t["id"] for t in everything["items"]] == [first, second]
    assert everything["items"][0]["deadline"] < everything["items"][1]["deadline"]
    assert by_policy["items"] == []
    assert ([t["id"] for t in paged["items"]], paged["next_page"]) == ([first], 2)
    assert ([t["id"] for t in page_two["items"]], page_two["next_page"]) == ([second], None)


def test_queue_due_overdue_keeps_tickets_past_their_deadline_by_the_guard_clock(
    desk: Desk,
) -> None:
    early = desk.routed("A-1")
    desk.clock.advance(days=2)
    later = desk.routed("A-2")
    first_deadline = desk.guard.reviews.get(early).deadline
    desk.clock.now = first_deadline + (desk.guard.reviews.get(later).deadline - first_deadline) / 2

    overdue = desk.get("/queue?due=overdue").json()["items"]

    assert [(t["id"], t["overdue"]) for t in overdue] == [(early, True)]


def test_queue_filters_by_status_and_due_before(desk: Desk) -> None:
    early = desk.routed("A-1")
    desk.clock.advance(days=7)
    late = desk.routed("A-2")
    desk.post(f"/tickets/{late}/claim")
    desk.post(f"/tickets/{late}/decision", {"outcome": "approved"})
    between = desk.guard.reviews.get(early).deadline.isoformat().replace("+00:00", "Z")

    def ids(query: str) -> list[str]:
        return [t["id"] for t in desk.get(f"/queue?{query}").json()["items"]]

    assert ids("") == [early]
    assert ids("status=completed") == [late]
    assert ids("status=all") == [early, late]
    assert ids(f"status=all&due_before={between}") == []
    assert ids("status=all&due_before=2030-01-01T00:00:00%2B05:00") == [early, late]


@pytest.mark.parametrize(
    "query", ["status=closed", "due=soon", "page=0", "per_page=101", "due_before=tomorrow"]
)
def test_queue_refuses_a_bad_query_with_bad_request(desk: Desk, query: str) -> None:
    answer = desk.get(f"/queue?{query}")

    assert (answer.status_code, problem_type(answer)) == (400, "bad-request")


def test_claim_gives_the_ticket_to_one_reviewer_and_refuses_a_second(desk: Desk) -> None:
    review_id = desk.routed()

    won = desk.post(f"/tickets/{review_id}/claim", token="token-marat")
    lost = desk.post(f"/tickets/{review_id}/claim", token="token-aigerim")

    assert won.status_code == 200
    assert won.json()["claimed_by"] == "E-9"
    assert (lost.status_code, problem_type(lost)) == (409, "claim-conflict")
    [record] = desk.sink.of_kind(kg.EventKind.REVIEW_CLAIMED)
    assert (record.reviewer, record.review_id) == (
        desk.guard.auditor.reviewer_ref("E-9"),
        review_id,
    )
    assert desk.get("/queue").json()["items"][0]["claimed_by"] == "E-9"


def test_an_expired_lease_can_be_claimed_by_another_reviewer_and_the_first_can_no_longer_decide(
    desk: Desk,
) -> None:
    review_id = desk.routed()
    desk.post(f"/tickets/{review_id}/claim", token="token-marat")
    desk.clock.advance(minutes=29)
    still_held = desk.post(f"/tickets/{review_id}/claim", token="token-aigerim")
    desk.clock.advance(minutes=2)

    taken = desk.post(f"/tickets/{review_id}/claim", token="token-aigerim")
    late = desk.post(f"/tickets/{review_id}/decision", {"outcome": "approved"}, token="token-marat")

    assert problem_type(still_held) == "claim-conflict"
    assert (taken.status_code, taken.json()["claimed_by"]) == (200, "E-7")
    assert (late.status_code, problem_type(late)) == (409, "claim-required")


def test_decision_needs_the_claim_and_the_person_sees_outcome_and_reason(desk: Desk) -> None:
    review_id = desk.routed("A-5")
    unclaimed = desk.post(f"/tickets/{review_id}/decision", {"outcome": "rejected"})
    desk.post(f"/tickets/{review_id}/claim")

    done = desk.post(
        f"/tickets/{review_id}/decision", {"outcome": "rejected", "reason": "income unverified"}
    )
    again = desk.post(f"/tickets/{review_id}/decision", {"outcome": "approved"})
    seen = desk.person(f"/reviews/{review_id}", "A-5").json()

    assert (unclaimed.status_code, problem_type(unclaimed)) == (409, "claim-required")
    assert (done.status_code, done.json()["status"], done.json()["reviewer"]) == (
        200,
        "completed",
        "E-9",
    )
    assert (again.status_code, problem_type(again)) == (409, "review-closed")
    assert (seen["status"], seen["outcome"], seen["outcome_reason"]) == (
        "completed",
        "rejected",
        "income unverified",
    )
    [record] = desk.sink.of_kind(kg.EventKind.REVIEW_COMPLETED)
    assert (record.reviewer, record.review_id, record.detail) == (
        desk.guard.auditor.reviewer_ref("E-9"),
        review_id,
        "rejected",
    )


@pytest.mark.parametrize(
    "body",
    [{"outcome": "maybe"}, {"outcome": "approved", "extra": "x"}, {"outcome": 1}, ["approved"]],
)
def test_decision_refuses_a_bad_body_with_bad_request(desk: Desk, body: object) -> None:
    review_id = desk.routed()
    desk.post(f"/tickets/{review_id}/claim")

    answer = desk.post(f"/tickets/{review_id}/decision", body)

    assert (answer.status_code, problem_type(answer)) == (400, "bad-request")
    assert desk.guard.reviews.get(review_id).status is kg.ReviewStatus.OPEN


def test_a_post_that_is_not_json_is_refused_with_415(desk: Desk) -> None:
    review_id = desk.routed()

    answer = desk.client.post(
        f"/ai-reviews/tickets/{review_id}/claim",
        headers={"Authorization": "Bearer token-marat"},
        content=b"",
    )

    assert (answer.status_code, problem_type(answer)) == (415, "json-required")
    assert desk.guard.store.review_work([review_id]) == {}


def test_release_by_the_holder_frees_the_ticket_and_is_refused_to_others(desk: Desk) -> None:
    review_id = desk.routed()
    desk.post(f"/tickets/{review_id}/claim")

    refused = desk.post(f"/tickets/{review_id}/release", token="token-aigerim")
    released = desk.post(f"/tickets/{review_id}/release")
    taken = desk.post(f"/tickets/{review_id}/claim", token="token-aigerim")

    assert (refused.status_code, problem_type(refused)) == (409, "claim-required")
    assert released.status_code == 200
    assert taken.status_code == 200
    [record] = desk.sink.of_kind(kg.EventKind.REVIEW_RELEASED)
    assert (record.reviewer, record.review_id) == (
        desk.guard.auditor.reviewer_ref("E-9"),
        review_id,
    )


def test_escalation_records_why_releases_the_claim_and_shows_in_the_case(desk: Desk) -> None:
    review_id = desk.routed()
    desk.post(f"/tickets/{review_id}/claim")

    escalated = desk.post(f"/tickets/{review_id}/escalation", {"reason": "needs a credit officer"})
    blocked = desk.post(f"/tickets/{review_id}/escalation", {}, token="token-aigerim")
    case = desk.get(f"/tickets/{review_id}", token="token-senior").json()

    assert escalated.status_code == 200
    assert (blocked.status_code, problem_type(blocked)) == (400, "bad-request")
    assert case["claim"] is None
    assert (case["escalation"]["by"], case["escalation"]["reason"]) == (
        "E-9",
        "needs a credit officer",
    )
    [record] = desk.sink.of_kind(kg.EventKind.REVIEW_ESCALATED)
    assert (record.reviewer, record.review_id) == (
        desk.guard.auditor.reviewer_ref("E-9"),
        review_id,
    )


def test_case_shows_the_pseudonym_unless_the_reviewer_role_allows_the_identifier(
    desk: Desk,
) -> None:
    review_id = desk.routed("A-7")

    plain = desk.get(f"/tickets/{review_id}").json()
    senior = desk.get(f"/tickets/{review_id}", token="token-senior").json()

    pseudonym = desk.guard.auditor.pseudonym("A-7")
    assert plain["subject"] == {"pseudonym": pseudonym, "id": None}
    assert "A-7" not in str(plain)
    assert senior["subject"] == {"pseudonym": pseudonym, "id": "A-7"}
    assert (plain["policy"]["name"], plain["policy"]["overridable"]) == ("loan_approval", False)
    assert (plain["ticket"]["reason"], plain["explanation"], plain["data_basis"]) == (
        "objection",
        None,
        None,
    )
    details = [r.detail for r in desk.sink.of_kind(kg.EventKind.REVIEW_CASE_VIEWED)]
    assert details == ["subject pseudonymised", "subject shown"]


def test_case_of_an_unknown_ticket_is_404(desk: Desk) -> None:
    answer = desk.get("/tickets/no-such-ticket")

    assert (answer.status_code, problem_type(answer)) == (404, "not-found")


def test_override_of_a_medium_autonomy_decision_is_recorded_and_shown_to_the_person(
    desk: Desk,
) -> None:
    decision_id = desk.automated("B-1")

    answer = desk.post(
        f"/decisions/{decision_id}/override", {"action": "cancel", "reason": "limit too high"}
    )
    seen = desk.person(f"/{decision_id}/explanation", "B-1").json()

    assert answer.status_code == 200
    assert (answer.json()["action"], answer.json()["reviewer"]) == ("cancel", "E-9")
    assert [(o["action"], o["note"]) for o in seen["human_overrides"]] == [
        ("cancel", "limit too high")
    ]
    [record] = desk.sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN)
    assert (record.policy, record.reviewer, record.detail) == (
        "card_limit",
        desk.guard.auditor.reviewer_ref("E-9"),
        f"cancel {decision_id}: limit too high",
    )


def test_override_of_a_high_autonomy_decision_is_refused_and_not_recorded(desk: Desk) -> None:
    desk.guard.consents.grant("C-1", purpose="credit-scoring", notice_version="1")
    decision = desk.client.post("/loans/C-1")
    desk.guard.explanations.flush()

    answer = desk.post(
        f"/decisions/{decision.headers['ai-decision-id']}/override", {"action": "correct"}
    )
    unknown = desk.post("/decisions/no-such-decision/override", {"action": "correct"})

    assert decision.status_code == 200
    assert (answer.status_code, problem_type(answer)) == (409, "override-forbidden")
    assert (unknown.status_code, problem_type(unknown)) == (404, "not-found")
    assert desk.sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN) == []


def test_an_unknown_reviewer_route_is_404(desk: Desk) -> None:
    answer = desk.post("/tickets/x/approve")

    assert (answer.status_code, problem_type(answer)) == (404, "not-found")


def test_fastapi_openapi_lists_every_reviewer_route_with_its_problem_types() -> None:
    desk = Desk("fastapi")
    try:
        schema = desk.client.get("/openapi.json").json()
    finally:
        desk.close()

    paths = schema["paths"]
    claim = paths["/ai-reviews/tickets/{review_id}/claim"]["post"]
    assert {
        "/ai-reviews/queue",
        "/ai-reviews/tickets/{review_id}",
        "/ai-reviews/tickets/{review_id}/release",
        "/ai-reviews/tickets/{review_id}/decision",
        "/ai-reviews/tickets/{review_id}/escalation",
        "/ai-reviews/decisions/{decision_id}/override",
    } <= paths.keys()
    assert "claim-conflict" in claim["responses"]["409"]["description"]
    assert "review-closed" in claim["responses"]["409"]["description"]
    assert {"401", "403", "415"} <= claim["responses"].keys()
    assert list(claim["responses"]["401"]["headers"]) == ["WWW-Authenticate"]
    override = paths["/ai-reviews/decisions/{decision_id}/override"]["post"]
    assert "override-forbidden" in override["responses"]["409"]["description"]
    assert schema["components"]["schemas"]["KzaiGuardProblem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]


def test_reviews_prefix_none_mounts_no_reviewer_routes() -> None:
    desk = Desk("starlette", reviews_prefix=None)
    try:
        answer = desk.client.get("/ai-reviews/queue", headers={"Authorization": "Bearer x"})
    finally:
        desk.close()

    assert answer.status_code == 404
    assert answer.headers["content-type"] != "application/problem+json"


def test_overlapping_prefixes_fail_at_start_up_naming_both() -> None:
    with pytest.raises(kg.ConfigurationError, match="reviews_prefix '/ai-decisions/reviewers'"):
        make_guard(reviews_prefix="/ai-decisions/reviewers")


def test_the_case_of_a_ticket_whose_policy_is_no_longer_declared_still_opens(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'kzg.db'}"
    before, _ = make_guard(store=store)
    before.objections.record("A-1")
    with TestClient(build_app("starlette", before)) as client:
        review_id = client.post("/loans/A-1").json()["review_id"]
    before.close()
    after, _ = make_guard(store=store, policies=(CARD,))
    after_app = build_app("starlette", after)
    try:
        with TestClient(after_app) as client:
            headers = bearer("token-marat")
            case = client.get(f"/ai-reviews/tickets/{review_id}", headers=headers)
            page = client.get(f"/ai-reviews/console/tickets/{review_id}", headers=headers)
    finally:
        after.close()

    assert case.status_code == 200
    assert case.json()["policy"]["name"] == "loan_approval"
    assert page.status_code == 200
    assert "autonomy" not in case.json()["policy"]


LOAN_WITH_BASIS = kg.DecisionPolicy(
    **{
        **LOAN.model_dump(),
        "data_basis": (
            kg.BasisInput(name="monthly_income", source="request", label="Monthly income"),
            kg.BasisInput(
                name="risk_score", source="derived", redaction="trade_secret", reason="Secret."
            ),
        ),
    }
)


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_the_case_shows_the_data_basis_redacted_by_the_policys_rules(framework: str) -> None:
    guard, _ = make_guard(policies=(LOAN_WITH_BASIS, CARD))

    @guard.decision(LOAN.name)
    def decide() -> None:
        kg.explain(EXPLANATION)
        kg.data_basis({"monthly_income": 600_000, "risk_score": 0.8125})

    try:
        guard.consents.grant("A-1", purpose="credit-scoring", notice_version="1")
        with kg.decision_context("A-1") as context:
            decide()
        assert context.decision_id is not None
        ticket = guard.reviews.open(
            decision_id=context.decision_id, policy=LOAN.name, subject="A-1", reason="contested"
        )
        with TestClient(build_app(framework, guard)) as client:
            senior = bearer("token-senior")
            case = client.get(f"/ai-reviews/tickets/{ticket.id}", headers=senior).json()
            page = client.get(
                f"/ai-reviews/console/tickets/{ticket.id}?lang=en", headers=senior
            ).text
    finally:
        guard.close()

    assert [(i["name"], i.get("value"), i.get("reason")) for i in case["data_basis"]["inputs"]] == [
        ("monthly_income", 600_000, None),
        ("risk_score", None, "Secret."),
    ]
    assert "0.8125" not in str(case)
    assert "<h2>Data basis</h2>" in page
    assert "<dt>Monthly income</dt><dd>600000</dd>" in page
    assert "<dt>risk_score</dt><dd>Withheld: Secret.</dd>" in page
    assert "0.8125" not in page


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_a_decision_known_only_by_its_data_basis_can_be_overridden_and_its_record_names_the_person(
    framework: str,
) -> None:
    offers = kg.DecisionPolicy(
        name="card_offers",
        significance="none",
        autonomy="medium",
        risk="minimal",
        data_basis=(kg.BasisInput(name="monthly_income", source="request"),),
    )
    guard, sink = make_guard(policies=(offers,))

    @guard.decision(offers.name)
    def decide() -> None:
        kg.data_basis({"monthly_income": 600_000})

    try:
        with kg.decision_context("B-1") as context:
            decide()
        assert context.decision_id is not None
        with TestClient(build_app(framework, guard)) as client:
            answer = client.post(
                f"/ai-reviews/decisions/{context.decision_id}/override",
                json={"action": "cancel", "reason": "income misread"},
                headers=bearer("token-marat"),
            )
    finally:
        guard.close()

    assert answer.status_code == 200
    [record] = sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN)
    assert (record.subject, record.detail) == (
        guard.auditor.pseudonym("B-1"),
        f"cancel {context.decision_id}: income misread",
    )
