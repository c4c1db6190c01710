"""A decision whose audit log in PostgreSQL goes silent (packets held, not refused) is refused
with 503 ``audit-unavailable`` once it has waited ``durable_wait`` for its record, rather than
waiting for the link to heal."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.audit.keys import write_keypair
from kzai_guard.audit.segments import parse_line
from tests.deploy.proxy import TcpProxy
from tests.http.conftest import SUBJECT, build_fastapi, policies
from tests.postgres import fresh_database
from tests.samples import GATEWAY_SUBJECT

WAIT_S = 1.0
GRACE_S = 15.0


@pytest.fixture
def proxied_log() -> Iterator[tuple[TcpProxy, str, str]]:
    with fresh_database() as url, TcpProxy("127.0.0.1", 5432) as proxy:
        yield proxy, url.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/"), url


def decisions_in_the_log(url: str) -> dict[str, str]:
    """Decision id to verdict, of every decision record in the log."""
    with psycopg.connect(url) as conn:
        lines = [bytes(r[0]) for r in conn.execute("SELECT line FROM kzg_log_entries")]
    records = [parse_line(line)["rec"] for line in lines]
    return {r["id"]: r["verdict"] for r in records if r.get("kind") == "decision"}


@pytest.mark.parametrize("path", ["loan", "loan-sync"])
def test_a_decision_on_a_silent_log_is_refused_after_the_wait_not_held(
    proxied_log: tuple[TcpProxy, str, str], tmp_path: Path, path: str
) -> None:
    proxy, url, direct = proxied_log
    _, _, signer = write_keypair(tmp_path / "keys", "silent-log")
    guard = kg.Guard(
        policies(),
        store="memory://",
        audit=url,
        audit_signer=signer,
        subject=GATEWAY_SUBJECT,
        contact="support@bank.kz",
    )
    for gate in guard._gates.values():
        gate.durable_wait = WAIT_S
    client = TestClient(build_fastapi(guard, []), raise_server_exceptions=False)
    try:
        guard.consents.grant("A-1", "credit-scoring", "v1")
        first = client.post(f"/{path}/A-1", headers={SUBJECT: "A-1"})
        proxy.cut("blackhole")
        answers: list[Any] = []
        asking = threading.Thread(
            target=lambda: answers.append(client.post(f"/{path}/A-1", headers={SUBJECT: "A-1"})),
            daemon=True,
        )
        asking.start()
        asking.join(WAIT_S + GRACE_S)
        answered = not asking.is_alive()
    finally:
        proxy.restore()
        client.close()
        guard.close()

    trail = decisions_in_the_log(direct)
    assert first.status_code == 200
    assert trail[first.headers["ai-decision-id"]] == "allow"
    assert answered, f"no answer within {WAIT_S + GRACE_S}s of a silent log"
    assert answers[0].status_code == 503
    assert answers[0].json()["type"].endswith(":audit-unavailable")
    # the log answered again only after the decision gave up: its record was withdrawn
    assert answers[0].json()["decision_id"] not in trail
