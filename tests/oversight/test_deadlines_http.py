"""Over HTTP: the person's overdue ticket says so; the reviewer API's 401s name a challenge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.oversight.conftest import Desk


def test_the_persons_ticket_past_its_deadline_says_so_in_a_field_and_a_sentence(
    desk: Desk,
) -> None:
    review_id = desk.routed("A-1")
    deadline = desk.guard.reviews.get(review_id).deadline
    desk.clock.now = deadline
    on_time = desk.person(f"/reviews/{review_id}", "A-1").json()
    desk.clock.now = deadline + timedelta(microseconds=1)
    late = desk.person(f"/reviews/{review_id}", "A-1").json()

    assert (on_time["overdue"], on_time["overdue_detail"]) == (False, None)
    assert (late["overdue"], late["overdue_detail"]) == (
        True,
        f"The review of this decision is past its deadline ({deadline.isoformat()}): you were "
        "owed a human's answer by then and have not had one yet. Contact credit@example.kz to "
        "ask when you will have it.",
    )


@pytest.mark.parametrize("path", ["/queue", "/console/"])
def test_a_request_nobody_signed_in_gets_401_with_the_configured_challenge(
    desk: Desk, path: str
) -> None:
    unsigned = desk.get(path, token=None)
    clerk = desk.get(path, token="token-clerk")

    assert (unsigned.status_code, unsigned.headers.get("www-authenticate")) == (
        401,
        'Bearer realm="ai-reviews"',
    )
    assert (clerk.status_code, clerk.headers.get("www-authenticate")) == (403, None)


def test_the_challenge_is_what_the_guard_is_told() -> None:
    made = Desk("starlette", reviewer_challenge='Cookie realm="staff", form-action="/sign-in"')
    try:
        unsigned = made.get("/queue", token=None)
    finally:
        made.close()

    assert unsigned.headers["www-authenticate"] == 'Cookie realm="staff", form-action="/sign-in"'
