"""The README's service under real servers with three workers: uvicorn, gunicorn, --preload.

For each server shape, one server runs the test app with the embedded defaults (a SQLite store
and an audit directory shared by the workers). Every worker serves; a consent granted or
withdrawn through one worker holds in all within the poll bound; an operator script beside the
server writes to the same log; after a clean stop the log holds exactly one allowed-decision
record per 200 answer and verifies with the public key alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.deploy.client import Answer, Client, Load
from tests.deploy.deployment import Deployment
from tests.deploy.servers import SHAPES, Server

pytestmark = pytest.mark.slow

BOUND_S = 2.0
"""How long a change made through one worker may take to hold in all (the poll bound, with
room for a busy machine)."""
WATCH_S = BOUND_S + 1.0
THREADS = 6


@dataclass
class Running:
    """A started server of one shape and what the tests saw it answer."""

    deployment: Deployment
    server: Server
    client: Client
    allowed: set[str] = field(default_factory=set)
    reviews: set[str] = field(default_factory=set)

    def clients(self, n: int = THREADS) -> list[Client]:
        return [self.deployment.client(self.server) for _ in range(n)]

    def keep(self, answers: list[Answer]) -> None:
        """Remember the decision ids of the 200 answers, for the log check at the end."""
        self.allowed |= {a.decision_id for a in answers if a.status == 200 and a.decision_id}


@pytest.fixture(scope="module", params=SHAPES)
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    shape: str = request.param
    deployment = Deployment.on_one_host(tmp_path_factory.mktemp(shape))
    server = deployment.server(shape)
    try:
        server.start()
        client = deployment.client(server)
        yield Running(deployment, server, client)
        client.close()
    finally:
        server.close()


def subject() -> str:
    return f"A-{uuid.uuid4().hex[:10]}"


def watch(running: Running, applicant: str, seconds: float = WATCH_S) -> list[Answer]:
    """Decisions about ``applicant`` from several threads, each on new connections."""
    clients = running.clients()
    with Load(clients, lambda _: applicant) as load:
        time.sleep(seconds)
    for client in clients:
        client.close()
    assert load.failures == []
    running.keep(load.answers)
    return load.answers


def burst(running: Running, applicant: str, n: int = 60) -> list[Answer]:
    """``n`` decisions about ``applicant``, several at a time."""
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda _: running.client.decide(applicant), range(n)))
    running.keep(answers)
    return answers


def test_every_worker_serves(running: Running) -> None:
    applicant = subject()
    running.client.grant(applicant)

    answers = burst(running, applicant, 120)

    assert {a.status for a in answers} == {200}
    served = {a.pid for a in answers}
    assert len(served) >= 2
    assert served <= running.server.worker_pids()


def test_a_consent_changed_through_one_worker_holds_in_all_within_the_poll_bound(
    running: Running,
) -> None:
    applicant = subject()
    assert {a.status for a in burst(running, applicant)} == {403}  # the workers cache it

    running.client.grant(applicant)
    granted = time.monotonic()
    after_grant = [a for a in watch(running, applicant) if a.sent >= granted + BOUND_S]
    running.client.withdraw(applicant)
    withdrawn = time.monotonic()
    after_withdrawal = [a for a in watch(running, applicant) if a.sent >= withdrawn + BOUND_S]

    assert after_grant and {a.status for a in after_grant} == {200}
    assert len({a.pid for a in after_grant}) >= 2
    assert after_withdrawal and {a.status for a in after_withdrawal} == {403}
    assert {a.problem for a in after_withdrawal} == {"urn:kzai-guard:problem:no-legal-basis"}
    assert len({a.pid for a in after_withdrawal}) >= 2


def wait_for(running: Running, applicant: str, status: int) -> Answer:
    give_up = time.monotonic() + BOUND_S
    answers = [running.client.decide(applicant)]
    while answers[-1].status != status and time.monotonic() < give_up:
        time.sleep(0.05)
        answers.append(running.client.decide(applicant))
    running.keep(answers)
    return answers[-1]


def test_an_operator_script_beside_the_server_acts_on_the_same_store_and_log(
    running: Running,
) -> None:
    applicant = subject()
    running.deployment.operator("grant", applicant)
    assert wait_for(running, applicant, 200).status == 200

    running.deployment.operator("object", applicant)
    routed = wait_for(running, applicant, 202)
    assert routed.status == 202
    review = str(routed.body["review_id"])
    running.deployment.operator("complete", review)
    running.reviews.add(review)


def test_a_client_cannot_grant_a_consent_by_naming_a_subject(running: Running) -> None:
    applicant = subject()
    url = f"{running.server.url}/consents/{applicant}"

    refused = [
        httpx.post(url, headers=headers, timeout=15.0).status_code
        for headers in ({}, {"Authorization": "Bearer guessed"}, {"X-Subject-Id": applicant})
    ]

    assert refused == [401, 401, 401]
    assert running.client.decide(applicant).status == 403


def test_after_a_clean_stop_one_record_per_allowed_answer_and_the_log_verifies(
    running: Running,
) -> None:
    assert running.server.stop() == 0

    verified = running.deployment.verify()
    trail = running.deployment.trail()

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK: ")
    assert trail.duplicated() == []
    allowed = trail.allowed_decisions()
    assert len(allowed) == len(set(allowed))
    assert set(allowed) == running.allowed
    for review in running.reviews:
        assert trail.ids("review.opened", review_id=review)
        assert trail.ids("review.completed", review_id=review)
