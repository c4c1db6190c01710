"""Two processes looking at the same store at once make one finding and one audit record per
ticket state, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

import kzai_guard as kg
from tests.deadlines.processes import Watcher
from tests.postgres import fresh_database
from tests.samples import GATEWAY_SUBJECT, LOAN

OPENED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATE = "2026-03-06T09:00:00+00:00"
"""Friday: every ticket opened on Monday is overdue (its deadline was the end of Thursday)."""
TICKETS = 30


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('shared') / 'kzg.db'}"
        return
    with fresh_database() as url:
        yield url


def test_two_processes_record_each_overdue_ticket_once(store_url: str) -> None:
    guard = kg.Guard(
        [LOAN],
        store=store_url,
        audit=kg.NullSink(),
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        clock=lambda: OPENED,
        deadline_check_seconds=None,
    )
    tickets = {
        guard.reviews.open(
            decision_id=f"d-{n}", policy="loan_approval", subject=f"A-{n}", reason="objection"
        ).id
        for n in range(TICKETS)
    }
    watchers = [Watcher(store_url, LATE, "-", "sweep") for _ in range(2)]
    for watcher in watchers:
        watcher.go()
    written = [orjson.loads(w.readline()) for w in watchers]
    codes = [w.finish() for w in watchers]
    findings = guard.store.deadline_findings()  # type: ignore[attr-defined]
    guard.close()

    records = written[0] + written[1]
    assert codes == [0, 0]
    assert sorted(records) == sorted(f.id for f in findings)
    assert len(records) == len(set(records)) == TICKETS
    assert {f.review_id for f in findings} == tickets
    assert {f.state for f in findings} == {kg.DeadlineState.OVERDUE}
