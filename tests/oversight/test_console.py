"""The reviewer's console over HTTP: languages, accessible markup, CSRF, escaping, the forms."""

from __future__ import annotations

import re
from typing import Any

import pytest

import kzai_guard as kg
from tests.oversight.conftest import Desk
from tests.oversight.service import bearer, build_app, make_guard

CONSOLE = "/ai-reviews/console"


def page(desk: Desk, path: str, token: str = "token-marat", **headers: str) -> Any:
    return desk.client.get(CONSOLE + path, headers={**bearer(token), **headers})


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def submit(desk: Desk, path: str, fields: dict[str, str], token: str = "token-marat") -> Any:
    return desk.client.post(
        CONSOLE + path, headers=bearer(token), data=fields, follow_redirects=False
    )


@pytest.mark.parametrize(
    ("query", "accept", "lang", "heading"),
    [
        ("?lang=kk", "en", "kk", "Кезек"),
        ("?lang=ru", "kk", "ru", "Очередь"),
        ("?lang=en", "ru", "en", "Queue"),
        ("", "ru-RU,ru;q=0.9,en;q=0.8", "ru", "Очередь"),
        ("", "de-DE, en;q=0.5", "en", "Queue"),
        ("", "fr", "kk", "Кезек"),
        ("?lang=xx", "", "kk", "Кезек"),
    ],
)
def test_the_queue_page_speaks_kazakh_russian_or_english(
    desk: Desk, query: str, accept: str, lang: str, heading: str
) -> None:
    answer = page(desk, "/" + query, **{"Accept-Language": accept})

    assert answer.status_code == 200
    assert f'<html lang="{lang}">' in answer.text
    assert f"<h1>{heading}</h1>" in answer.text


def test_the_queue_page_lists_tickets_with_due_dates_and_marks_overdue_ones(desk: Desk) -> None:
    review_id = desk.routed()
    deadline = desk.guard.reviews.get(review_id).deadline
    desk.clock.now = deadline
    on_time = page(desk, "/?lang=en").text
    desk.clock.advance(minutes=1)
    late = page(desk, "/?lang=en").text

    assert f'href="{CONSOLE}/tickets/{review_id}?lang=en"' in on_time
    assert f'<time datetime="{deadline.isoformat()}">' in on_time
    assert "<td>The person objected</td>" in on_time
    assert "Overdue" not in on_time
    assert '<span class="overdue">Overdue</span>' in late


def test_pages_have_labels_headings_and_security_headers(desk: Desk) -> None:
    review_id = desk.routed()
    desk.post(f"/tickets/{review_id}/claim")

    answer = page(desk, f"/tickets/{review_id}?lang=en")

    html = answer.text
    for control in re.findall(r'<(?:textarea|select|input) id="([^"]+)"', html):
        assert f'<label for="{control}">' in html, control
    assert "<h1>" in html and "<h2>" in html
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"Path={CONSOLE}" in cookie


def test_a_visitor_who_is_not_signed_in_gets_a_401_page_and_a_non_reviewer_a_403_page(
    desk: Desk,
) -> None:
    anonymous = desk.client.get(CONSOLE + "/?lang=en", headers={"X-Reviewer": "E-9"})
    clerk = page(desk, "/?lang=ru", token="token-clerk")

    assert anonymous.status_code == 401
    assert 'data-problem="reviewer-required"' in anonymous.text
    assert clerk.status_code == 403
    assert "Вашей учётной записи не разрешено" in clerk.text


@pytest.mark.parametrize("token", ["missing", "wrong", "another reviewer's"])
def test_a_form_post_without_the_right_csrf_token_is_refused_and_changes_nothing(
    desk: Desk, token: str
) -> None:
    review_id = desk.routed()
    page(desk, f"/tickets/{review_id}")  # the browser gets its CSRF cookie
    others = form_token(page(desk, f"/tickets/{review_id}", token="token-aigerim").text)
    fields = {
        "missing": {},
        "wrong": {"csrf": "0" * 64},
        "another reviewer's": {"csrf": others},
    }[token]

    answer = submit(desk, f"/tickets/{review_id}/claim?lang=en", fields)

    assert answer.status_code == 403
    assert 'data-problem="csrf-failed"' in answer.text
    assert desk.guard.store.review_work([review_id]) == {}


def test_a_token_is_refused_with_another_browser_cookie(desk: Desk) -> None:
    review_id = desk.routed()
    token = form_token(page(desk, f"/tickets/{review_id}").text)
    desk.client.cookies.clear()
    page(desk, f"/tickets/{review_id}")  # a new cookie, as another browser would have

    answer = submit(desk, f"/tickets/{review_id}/claim", {"csrf": token})

    assert answer.status_code == 403
    assert desk.guard.store.review_work([review_id]) == {}


def test_claim_decide_through_the_forms_and_the_person_sees_the_outcome(desk: Desk) -> None:
    review_id = desk.routed("A-9")
    token = form_token(page(desk, f"/tickets/{review_id}?lang=en").text)

    claimed = submit(desk, f"/tickets/{review_id}/claim?lang=en", {"csrf": token})
    holding = page(desk, f"/tickets/{review_id}?lang=en").text
    decided = submit(
        desk,
        f"/tickets/{review_id}/decision?lang=en",
        {"csrf": token, "outcome": "approved", "reason": "income <b>verified</b>"},
    )
    after = page(desk, f"/tickets/{review_id}?lang=en").text

    assert (claimed.status_code, claimed.headers["location"]) == (
        303,
        f"{CONSOLE}/tickets/{review_id}?lang=en",
    )
    assert "You hold this ticket" in holding and 'name="outcome"' in holding
    assert decided.status_code == 303
    assert '<dd id="ticket-status">Decided: Approved</dd>' in after
    assert "income &lt;b&gt;verified&lt;/b&gt;" in after and "<b>verified" not in after
    seen = desk.person(f"/reviews/{review_id}", "A-9").json()
    assert (seen["outcome"], seen["outcome_reason"]) == ("approved", "income <b>verified</b>")


def test_a_second_reviewer_gets_a_409_page_for_a_ticket_someone_holds(desk: Desk) -> None:
    review_id = desk.routed("A-1")
    other_ticket = desk.routed("A-2")
    desk.post(f"/tickets/{review_id}/claim", token="token-marat")
    case = page(desk, f"/tickets/{review_id}?lang=en", token="token-aigerim").text
    # the token belongs to the browser and the reviewer, so any of her pages gives it
    token = form_token(page(desk, f"/tickets/{other_ticket}", token="token-aigerim").text)

    answer = submit(desk, f"/tickets/{review_id}/claim?lang=en", {"csrf": token}, "token-aigerim")

    assert "Another reviewer is working on this ticket." in case
    assert 'name="csrf"' not in case
    assert answer.status_code == 409
    assert "Another reviewer holds this ticket." in answer.text
    assert desk.guard.store.review_work([review_id])[review_id].claimed_by == "E-9"


def test_override_through_the_decision_page_for_medium_autonomy_only(desk: Desk) -> None:
    card = desk.automated("B-2")
    desk.guard.consents.grant("C-2", purpose="credit-scoring", notice_version="1")
    loan = desk.client.post("/loans/C-2").headers["ai-decision-id"]
    desk.guard.explanations.flush()
    found = desk.client.get(
        f"{CONSOLE}/decisions?id={card}&lang=en",
        headers=bearer("token-marat"),
        follow_redirects=False,
    )
    card_page = page(desk, f"/decisions/{card}?lang=en").text
    loan_page = page(desk, f"/decisions/{loan}?lang=en").text

    answer = submit(
        desk,
        f"/decisions/{card}/override?lang=en",
        {"csrf": form_token(card_page), "action": "correct", "reason": "limit recomputed"},
    )

    assert found.headers["location"] == f"{CONSOLE}/decisions/{card}?lang=en"
    assert "Limit set" in card_page and 'name="action"' in card_page
    assert "high autonomy" in loan_page and 'name="action"' not in loan_page
    assert answer.status_code == 303
    assert "limit recomputed" in page(desk, f"/decisions/{card}?lang=en").text
    seen = desk.person(f"/{card}/explanation", "B-2").json()["human_overrides"]
    assert [(o["action"], o["note"]) for o in seen] == [("correct", "limit recomputed")]
    assert len(desk.sink.of_kind(kg.EventKind.DECISION_OVERRIDDEN)) == 1


def test_review_console_true_without_jinja2_fails_at_install_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kzai_guard.console.find_spec", lambda name: None)

    guard, _ = make_guard(review_console=True)
    try:
        with pytest.raises(kg.ConfigurationError, match=r"kzai-guard\[console\]"):
            build_app("starlette", guard)
    finally:
        guard.close()


def test_review_console_false_leaves_the_console_out_and_keeps_the_api() -> None:
    desk = Desk("starlette", review_console=False)
    try:
        console = page(desk, "/")
        api = desk.get("/queue")
    finally:
        desk.close()

    assert (console.status_code, console.headers["content-type"]) == (
        404,
        "application/problem+json",
    )
    assert api.status_code == 200
