"""With durability "sync", a decision's response leaves only once its explanation is in the
store, so another host can serve the ``Link`` at once; when the store cannot take it, the
response goes without the ``Link`` and the explanation is stored once the store is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.stores.url import open_store
from kzai_guard.testing import memory_guard
from tests.http.conftest import SUBJECT, build_fastapi, policies
from tests.postgres import PG_ADDRESS, fresh_database
from tests.samples import GATEWAY_SUBJECT
from tests.tcp_proxy import CuttableProxy

GIVE_UP_S = 15.0


class Host:
    """One host of a service: a guard (sync durability) and a client for its app."""

    def __init__(self, store: str, **options: object) -> None:
        self.guard, _ = memory_guard(
            policies(),
            store=store,
            subject=GATEWAY_SUBJECT,
            contact="support@bank.kz",
            durability="sync",
            **options,
        )
        self.client = TestClient(build_fastapi(self.guard, []), raise_server_exceptions=False)

    def close(self) -> None:
        self.client.close()
        self.guard.close()


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def test_another_host_serves_the_explanation_as_soon_as_the_response_arrives(
    database: str,
) -> None:
    deciding, serving = Host(database), Host(database)
    deciding.guard.consents.grant("A-1", "credit-scoring", "v1")
    links, served = [], []
    for _ in range(20):
        response = deciding.client.post("/loan/A-1", headers={SUBJECT: "A-1"})
        link = response.headers["link"].split(">")[0].lstrip("<")
        links.append(link)
        served.append(serving.client.get(link, headers={SUBJECT: "A-1"}).status_code)
    deciding.close()
    serving.close()

    assert served == [200] * 20
    assert len(set(links)) == 20


def test_a_store_that_cannot_take_the_explanation_drops_the_link_and_stores_it_later(
    database: str,
) -> None:
    proxy = CuttableProxy(PG_ADDRESS)
    host = Host(database.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/"), stale_after=60.0)
    host.guard.consents.grant("A-1", "credit-scoring", "v1")
    assert host.client.post("/loan/A-1", headers={SUBJECT: "A-1"}).status_code == 200
    proxy.cut()

    response = host.client.post("/loan/A-1", headers={SUBJECT: "A-1"})
    decision_id = response.headers["ai-decision-id"]
    proxy.restore()
    direct = open_store(database)
    give_up = time.monotonic() + GIVE_UP_S
    while direct.get_explanation(decision_id) is None and time.monotonic() < give_up:
        time.sleep(0.05)
    stored = direct.get_explanation(decision_id)
    direct.close()
    host.close()
    proxy.close()

    assert response.status_code == 200
    assert "link" not in response.headers
    assert stored is not None and stored.decision_id == decision_id


def test_a_guard_refuses_a_durability_it_does_not_know() -> None:
    with pytest.raises(kg.ConfigurationError, match="durability must be 'sync' or 'async'"):
        memory_guard(policies(), durability="fsync")
