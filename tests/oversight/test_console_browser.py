"""The console in a real browser: Playwright driving Debian's Chromium against uvicorn.

Two reviewers sign in through the app's own (test) authentication; one claims and decides a
routed objection, the other cannot claim the same ticket; the person's route shows the outcome.
The test saves the screenshot that docs/reviewer-console.md shows.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from playwright import sync_api

from tests.oversight.service import SUBJECT_HEADER, build_app, make_guard

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "reviewer-console.png"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, object]]:
    """The loan service on a real socket (uvicorn in a thread), on an SQLite store."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is missing: run scripts/ensure-chromium (scripts/test does)")
    guard, _ = make_guard(store=f"sqlite:///{tmp_path / 'kzg.db'}")
    app = build_app("starlette", guard)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", guard
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        guard.close()


def sign_in(base: str, token: str) -> str:
    return f"{base}/test-sign-in?" + urlencode(
        {"token": token, "next": "/ai-reviews/console/?lang=en"}
    )


def test_a_reviewer_claims_and_decides_in_the_browser_and_a_second_cannot_claim(
    served: tuple[str, object],
) -> None:
    base, guard = served
    with httpx.Client(base_url=base) as person:
        guard.objections.record("A-1")  # type: ignore[attr-defined]
        routed = person.post("/loans/A-1")
        assert routed.status_code == 202
        review_id = routed.json()["review_id"]

        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                marat = browser.new_context(locale="en-GB").new_page()
                aigerim = browser.new_context(locale="en-GB").new_page()
                marat.goto(sign_in(base, "token-marat"))
                aigerim.goto(sign_in(base, "token-aigerim"))
                assert marat.locator("h1").inner_text() == "Queue"

                marat.get_by_role("link", name=review_id).click()
                aigerim.get_by_role("link", name=review_id).click()
                assert aigerim.get_by_role("button", name="Claim").is_visible()
                marat.get_by_role("button", name="Claim").click()
                assert "You hold this ticket" in marat.locator("main").inner_text()
                marat.screenshot(path=str(SCREENSHOT), full_page=True)

                aigerim.get_by_role("button", name="Claim").click()
                assert "Another reviewer holds this ticket." in aigerim.locator("main").inner_text()

                marat.get_by_label("Rejected").check()
                marat.get_by_label("Reason given to the person").fill(
                    "Income could not be verified."
                )
                marat.get_by_role("button", name="Record the decision").click()
                assert marat.locator("#ticket-status").inner_text() == "Decided: Rejected"

                marat.goto(f"{base}/ai-reviews/console/?lang=en")
                assert marat.get_by_role("link", name=review_id).count() == 0
            finally:
                browser.close()

        seen = person.get(f"/ai-decisions/reviews/{review_id}", headers={SUBJECT_HEADER: "A-1"})
        assert seen.json()["status"] == "completed"
        assert (seen.json()["outcome"], seen.json()["outcome_reason"]) == (
            "rejected",
            "Income could not be verified.",
        )
    assert SCREENSHOT.stat().st_size > 10_000
