"""Two reviewers race to claim the same tickets through two services on one shared store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.oversight.service import bearer, build_app, make_guard
from tests.postgres import fresh_database

TICKETS = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kzg.db'}"
        return
    with fresh_database() as url:
        yield url


def test_of_two_reviewers_racing_to_claim_exactly_one_wins_each_ticket(store_url: str) -> None:
    services = [make_guard(store=store_url)[0] for _ in range(2)]
    clients = [TestClient(build_app("starlette", guard)) for guard in services]
    try:
        tickets = []
        for n in range(TICKETS):
            services[0].objections.record(f"R-{n}")
            tickets.append(clients[0].post(f"/loans/R-{n}").json()["review_id"])
        results: dict[tuple[str, str], Any] = {}
        barrier = threading.Barrier(2)

        def reviewer(client: TestClient, token: str) -> None:
            for review_id in tickets:
                barrier.wait()
                answer = client.post(
                    f"/ai-reviews/tickets/{review_id}/claim", headers=bearer(token), json={}
                )
                results[review_id, token] = answer.status_code

        threads = [
            threading.Thread(target=reviewer, args=(clients[0], "token-marat")),
            threading.Thread(target=reviewer, args=(clients[1], "token-aigerim")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        for review_id in tickets:
            codes = sorted(results[review_id, t] for t in ("token-marat", "token-aigerim"))
            assert codes == [200, 409], review_id
            holder = services[1].store.review_work([review_id])[review_id].claimed_by
            winner = "E-9" if results[review_id, "token-marat"] == 200 else "E-7"
            assert holder == winner
    finally:
        for client in clients:
            client.close()
        for guard in services:
            guard.close()
