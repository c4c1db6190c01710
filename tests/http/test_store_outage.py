"""A guard whose PostgreSQL connection is cut refuses significant decisions with the
``facts-unavailable`` problem, never allows on a consent withdrawn meanwhile, and recovers by
itself when the connection returns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.core.verdict import Reason
from kzai_guard.testing import memory_guard
from tests.http.conftest import SUBJECT, build_fastapi, policies
from tests.postgres import PG_ADDRESS, fresh_database
from tests.samples import GATEWAY_SUBJECT
from tests.tcp_proxy import CuttableProxy

ROOT = Path(__file__).resolve().parents[2]
STALE_AFTER_S = 1.0
GIVE_UP_S = 20.0
ANOTHER_REPLICA = """
import sys
from kzai_guard.stores.url import open_store
from datetime import UTC, datetime

store = open_store(sys.argv[1])
withdrawn = store.withdraw_consents(sys.argv[2], "credit-scoring", datetime.now(UTC))
store.close()
print(len(withdrawn))
"""


class Replica:
    """A service whose guard reaches PostgreSQL through a proxy the test controls."""

    def __init__(self, url: str) -> None:
        self.proxy = CuttableProxy(PG_ADDRESS)
        self.guard, self.sink = memory_guard(
            policies(),
            store=url.replace("127.0.0.1/", f"127.0.0.1:{self.proxy.port}/"),
            subject=GATEWAY_SUBJECT,
            contact="support@bank.kz",
            stale_after=STALE_AFTER_S,
            poll_interval=0.05,
        )
        self.client = TestClient(build_fastapi(self.guard, []), raise_server_exceptions=False)

    def decide(self, path: str, subject: str) -> tuple[int, str]:
        response = self.client.post(f"/{path}/{subject}", headers={SUBJECT: subject})
        kind = response.json().get("type", "") if response.status_code >= 400 else ""
        return response.status_code, kind.rsplit(":", 1)[-1]

    def until(
        self, path: str, subject: str, changes_from: tuple[int, str]
    ) -> list[tuple[int, str]]:
        """Decide until the answer is no longer ``changes_from``; every answer, in order."""
        answers = [self.decide(path, subject)]
        give_up = time.monotonic() + GIVE_UP_S
        while answers[-1] == changes_from and time.monotonic() < give_up:
            time.sleep(0.02)
            answers.append(self.decide(path, subject))
        return answers

    def close(self) -> None:
        self.client.close()
        self.guard.close()
        self.proxy.close()


@pytest.fixture
def replica() -> Iterator[tuple[Replica, str]]:
    with fresh_database() as url:
        made = Replica(url)
        yield made, url
        made.close()


def withdraw_in_another_process(url: str, subject: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ANOTHER_REPLICA, url, subject],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "1"


UNAVAILABLE = (503, "facts-unavailable")
ALLOWED = (200, "")


def cut_after_a_decision(service: Replica) -> list[tuple[int, str]]:
    """Allow A-1 a loan (its facts are cached), cut the database off, and decide until the
    answer changes; every answer after the cut."""
    service.guard.consents.grant("A-1", "credit-scoring", "v1")
    assert service.decide("loan", "A-1") == ALLOWED
    service.proxy.cut()
    return service.until("loan", "A-1", changes_from=ALLOWED)


def test_cut_from_its_database_a_replica_refuses_then_honours_what_changed_once_restored(
    replica: tuple[Replica, str],
) -> None:
    service, url = replica
    while_cut = cut_after_a_decision(service)
    unknown_subject = service.decide("loan", "B-1")
    withdraw_in_another_process(url, "A-1")
    after_withdrawal = [service.decide("loan", "A-1") for _ in range(3)]
    not_significant = service.decide("offers", "A-1")
    service.proxy.restore()
    restored = service.until("loan", "A-1", changes_from=UNAVAILABLE)

    assert while_cut[-1] == UNAVAILABLE
    assert set(while_cut[:-1]) <= {ALLOWED}
    assert unknown_subject == UNAVAILABLE
    assert after_withdrawal == [UNAVAILABLE] * 3
    assert not_significant == ALLOWED
    assert set(restored[:-1]) <= {UNAVAILABLE}
    assert restored[-1] == (403, "no-legal-basis")
    assert service.decide("loan", "B-1") == (403, "no-legal-basis")
    refused = [r for r in service.sink.records if r.reason == Reason.FACTS_UNAVAILABLE]
    assert len(refused) >= 1 + 1 + 3
    assert all(r.verdict == "block" and r.subject for r in refused)


def test_a_kill_switch_thrown_elsewhere_while_cut_holds_once_the_connection_returns(
    replica: tuple[Replica, str],
) -> None:
    service, url = replica
    cut_after_a_decision(service)
    with kg.Guard(
        policies(),
        store=url,
        audit=kg.MemorySink(),
        subject=GATEWAY_SUBJECT,
        contact="support@bank.kz",
    ) as elsewhere:
        elsewhere.switches.suspend("loan_approval", by="ops@bank.kz")
    service.proxy.restore()

    restored = service.until("loan", "A-1", changes_from=UNAVAILABLE)[-1]

    assert restored == (503, "suspended")


def test_the_persons_routes_answer_facts_unavailable_while_the_store_is_cut(
    replica: tuple[Replica, str],
) -> None:
    service, _ = replica
    service.proxy.cut()
    headers = {SUBJECT: "A-1"}
    answers = [
        service.client.get("/ai-decisions/0123456789abcdef/explanation", headers=headers),
        service.client.get("/ai-decisions/reviews/0123456789abcdef", headers=headers),
        service.client.post("/ai-decisions/objections", headers=headers),
        service.client.delete("/ai-decisions/objections", headers=headers),
    ]

    assert [a.status_code for a in answers] == [503] * 4
    assert {a.json()["type"].rsplit(":", 1)[-1] for a in answers} == {"facts-unavailable"}
    assert {a.headers["content-type"] for a in answers} == {"application/problem+json"}
