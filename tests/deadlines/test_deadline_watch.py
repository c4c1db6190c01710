"""Each ticket state found is recorded once: one finding, one audit record, one count."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import kzai_guard as kg
from kzai_guard.deadlines import AUDIT_RETRY_AFTER
from kzai_guard.stores.deadline_findings import DeadlineFinding
from kzai_guard.testing import memory_guard
from tests.samples import GATEWAY_SUBJECT, LOAN

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 3, 5, 19, 0, tzinfo=UTC)
"""Opened Monday 2 March 2026 (14:00 in Almaty): due by the end of Thursday 5 March."""
KINDS = (kg.EventKind.REVIEW_DUE_SOON, kg.EventKind.REVIEW_OVERDUE)


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY

    def __call__(self) -> datetime:
        return self.now


class Watched:
    def __init__(self, **options: object) -> None:
        self.clock = Clock()
        self.reader = InMemoryMetricReader()
        self.guard, self.sink = memory_guard(
            [LOAN],
            contact="credit@example.kz",
            subject=GATEWAY_SUBJECT,
            clock=self.clock,
            meter_provider=MeterProvider(metric_readers=[self.reader]),
            deadline_check_seconds=None,
            **options,
        )

    def ticket(self, subject: str = "A-1") -> kg.ReviewTicket:
        return self.guard.reviews.open(
            decision_id=f"d-{subject}", policy="loan_approval", subject=subject, reason="objection"
        )

    def records(self) -> list[kg.AuditRecord]:
        return [r for r in self.sink.records if r.kind in KINDS]

    def counts(self) -> dict[tuple[str, str], int]:
        data = self.reader.get_metrics_data()
        return {
            (p.attributes["kzai_guard.policy"], p.attributes["kzai_guard.deadline"]): p.value
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "kzai_guard.reviews.deadline_findings"
            for point in [metric.data.data_points]
            for p in point
        }


@pytest.fixture
def watched() -> Iterator[Watched]:
    made = Watched()
    yield made
    made.guard.close()


def test_a_ticket_far_from_its_deadline_is_not_found(watched: Watched) -> None:
    watched.ticket()

    assert (watched.guard.deadlines.sweep(), watched.records()) == ([], [])


def test_due_soon_then_overdue_make_one_audit_record_each_whatever_the_number_of_looks(
    watched: Watched,
) -> None:
    ticket = watched.ticket()
    watched.clock.now = datetime(2026, 3, 4, 5, 0, tzinfo=UTC)  # Wednesday: due by Thursday
    soon = watched.guard.deadlines.sweep()
    again = watched.guard.deadlines.sweep()
    watched.clock.now = DEADLINE + timedelta(microseconds=1)
    late = watched.guard.deadlines.sweep()
    watched.guard.deadlines.sweep()

    assert ([f.state for f in soon], again, [f.state for f in late]) == (
        [kg.DeadlineState.DUE_SOON],
        [],
        [kg.DeadlineState.OVERDUE],
    )
    records = watched.records()
    assert [(r.kind, r.id, r.review_id, r.policy, r.detail) for r in records] == [
        (kind, finding.id, ticket.id, "loan_approval", "deadline 2026-03-05T19:00:00+00:00")
        for kind, finding in zip(KINDS, soon + late, strict=True)
    ]
    assert {r.subject for r in records} == {watched.guard.auditor.pseudonym("A-1")}
    assert watched.counts() == {("loan_approval", "due_soon"): 1, ("loan_approval", "overdue"): 1}


def test_a_completed_ticket_is_never_found(watched: Watched) -> None:
    ticket = watched.ticket()
    watched.guard.reviews.complete(ticket.id, reviewer=kg.Reviewer(id="o-7"), outcome="approved")
    watched.clock.now = DEADLINE + timedelta(days=30)

    assert (watched.guard.deadlines.sweep(), watched.records()) == ([], [])


def test_warning_days_set_how_early_a_ticket_is_due_soon() -> None:
    wednesday = datetime(2026, 3, 4, 5, 0, tzinfo=UTC)
    found = {}
    for days in (0, 1):
        made = Watched(deadline_warning_days=days)
        made.ticket()
        made.clock.now = wednesday
        found[days] = [f.state for f in made.guard.deadlines.sweep()]
        made.guard.close()

    assert found == {0: [], 1: [kg.DeadlineState.DUE_SOON]}


def test_a_finding_whose_process_died_before_its_audit_record_gets_it_from_a_later_look(
    watched: Watched,
) -> None:
    ticket = watched.ticket()
    at = DEADLINE + timedelta(hours=1)
    orphan = DeadlineFinding(
        "f-1", ticket.id, kg.DeadlineState.OVERDUE, "loan_approval", DEADLINE, at
    )
    assert watched.guard.store.record_deadline_finding(orphan, None) is True  # type: ignore[attr-defined]

    watched.clock.now = at + AUDIT_RETRY_AFTER - timedelta(seconds=1)
    early = watched.guard.deadlines.sweep()
    records_early = watched.records()
    watched.clock.now = at + AUDIT_RETRY_AFTER + timedelta(seconds=1)
    watched.guard.deadlines.sweep()
    watched.guard.deadlines.sweep()

    assert (early, records_early) == ([], [])
    assert [(r.kind, r.id, r.review_id) for r in watched.records()] == [
        (kg.EventKind.REVIEW_OVERDUE, "f-1", ticket.id)
    ]


def test_the_service_looks_on_its_own_every_deadline_check_seconds() -> None:
    clock = Clock()
    guard, sink = memory_guard(
        [LOAN],
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        clock=clock,
        deadline_check_seconds=1.0,
    )
    try:
        ticket = guard.reviews.open(
            decision_id="d", policy="loan_approval", subject="A-1", reason="objection"
        )
        clock.now = DEADLINE + timedelta(seconds=1)
        for _ in range(200):
            if guard.store.deadline_findings(ticket.id):  # type: ignore[attr-defined]
                break
            time.sleep(0.05)
        [finding] = guard.store.deadline_findings(ticket.id)  # type: ignore[attr-defined]
    finally:
        guard.close()
    assert [(r.kind, r.id) for r in sink.records if r.kind in KINDS] == [
        (kg.EventKind.REVIEW_OVERDUE, finding.id)
    ]


def test_every_due_ticket_is_found_when_they_fill_several_pages(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kzai_guard.deadlines._PAGE", 2)
    tickets = [watched.ticket(f"A-{n}") for n in range(5)]
    watched.clock.now = DEADLINE + timedelta(seconds=1)

    found = watched.guard.deadlines.sweep()

    assert sorted(f.review_id for f in found) == sorted(t.id for t in tickets)
