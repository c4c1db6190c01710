"""A decision's record and its explanation's JSON are made off the request's thread.

The request thread hands the audit log a draft (:class:`~kzai_guard.audit.sink.RecordDraft`)
and the explanation archive the explanation as given; the log's writer builds the record, the
explanation's digest included. These tests hold the outcome to what building on the request
thread gave: one record per decision, its digest that of the stored explanation's bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from hashlib import sha256
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.sink import RecordDraft
from kzai_guard.decision_record import DecisionRecorder
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

SUBJECT = "A-1"


def client_of(guard: kg.Guard, explanation: kg.Explanation = EXPLANATION) -> TestClient:
    @guard.decision("loan_approval")
    async def decide(request: Request) -> JSONResponse:
        kg.explain(explanation)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/decide", decide)])
    guard.install(app)
    return TestClient(app)


def consenting_guard(audit: Path | kg.AuditSink, **options: object) -> kg.Guard:
    """A guard of the loan policy auditing to ``audit``, SUBJECT's consent granted."""
    guard = kg.Guard(
        [LOAN],
        store="memory://",
        audit=audit,
        pseudonym_key=b"k" * 32,
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        **options,
    )
    guard.consents.grant(SUBJECT, "credit-scoring", "v1")
    return guard


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[kg.Guard, Path]]:
    log = tmp_path / "audit"
    guard = consenting_guard(log, durability="async")
    yield guard, log
    guard.close()


def test_the_record_is_built_by_the_log_writer_not_the_request_thread(
    logged: tuple[kg.Guard, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    guard, _ = logged
    builders: list[str] = []
    audit_record = DecisionRecorder.audit_record

    def watched(self: DecisionRecorder, *args: object) -> kg.AuditRecord:
        builders.append(threading.current_thread().name)
        return audit_record(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(DecisionRecorder, "audit_record", watched)
    with client_of(guard) as client:
        answer = client.get("/decide", headers={"X-Subject-Id": SUBJECT})
        request_thread = threading.current_thread().name
    assert answer.status_code == 200
    assert builders == ["kzai-audit-writer"]
    assert request_thread not in builders


def test_the_record_names_the_digest_of_the_stored_explanation_bytes(
    logged: tuple[kg.Guard, Path],
) -> None:
    guard, log = logged
    with client_of(guard) as client:
        answer = client.get("/decide", headers={"X-Subject-Id": SUBJECT})
        decision_id = answer.headers["ai-decision-id"]
        guard.explanations.flush()
        stored = guard.explanation(decision_id)
    assert answer.headers["link"].endswith(f'/{decision_id}/explanation>; rel="explanation"')
    [record] = [e.record for e in read_verified(log) if e.record.kind is kg.EventKind.DECISION]
    assert record.id == decision_id
    assert stored is not None and stored.decision_id == decision_id
    assert record.explanation_digest == sha256(stored.body).hexdigest() == stored.digest


def test_an_explanation_that_cannot_be_json_is_recorded_as_such_and_not_served(
    logged: tuple[kg.Guard, Path],
) -> None:
    guard, log = logged
    # made without validation: the model refuses a lone surrogate in every text
    unwritable = EXPLANATION.model_copy(update={"consequences": "granted \ud800"})
    with client_of(guard, unwritable) as client:
        answer = client.get("/decide", headers={"X-Subject-Id": SUBJECT})
        decision_id = answer.headers["ai-decision-id"]
        guard.explanations.flush()
        served = client.get(
            f"/ai-decisions/{decision_id}/explanation", headers={"X-Subject-Id": SUBJECT}
        )
        kept = guard.explanation(decision_id)
    assert (served.status_code, kept) == (404, None)
    [record] = [e.record for e in read_verified(log) if e.record.kind is kg.EventKind.DECISION]
    assert (record.id, record.explanation_digest) == (decision_id, None)
    assert record.detail == "explanation could not be written as JSON"


class WriteOnlySink:
    """A sink of the plain protocol: ``write`` and nothing more."""

    healthy = True

    def __init__(self) -> None:
        self.records: list[kg.AuditRecord] = []

    def write(self, record: kg.AuditRecord) -> Future[None] | None:
        self.records.append(record)
        return None

    def close(self) -> None:
        """Nothing to release."""


def test_a_sink_without_write_draft_gets_whole_records_with_the_digest() -> None:
    sink = WriteOnlySink()
    guard = consenting_guard(sink)
    with client_of(guard) as client:
        answer = client.get("/decide", headers={"X-Subject-Id": SUBJECT})
        guard.explanations.flush()
        stored = guard.explanation(answer.headers["ai-decision-id"])
    [record] = [r for r in sink.records if r.kind is kg.EventKind.DECISION]
    assert stored is not None and stored.decision_id == record.id
    assert record.explanation_digest == stored.digest == sha256(stored.body).hexdigest()


class CountingDraft:
    """A draft that says where and how often it was built."""

    def __init__(self, record: kg.AuditRecord) -> None:
        self.record = record
        self.built_on: list[str] = []

    def build(self) -> kg.AuditRecord:
        self.built_on.append(threading.current_thread().name)
        return self.record


def sample_record(n: int) -> kg.AuditRecord:
    return kg.AuditRecord(id=f"r-{n}", time=1_700_000_000_000_000 + n, kind=kg.EventKind.DECISION)


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_the_log_builds_each_draft_once_and_writes_it_in_order(
    tmp_path: Path, durability: str
) -> None:
    log = AuditLog.open(
        tmp_path / "audit", signer=Signer.generate("drafts.example"), durability=durability
    )
    drafts: list[RecordDraft] = []
    for n in range(5):
        log.write(sample_record(100 + n))
        draft = CountingDraft(sample_record(n))
        drafts.append(draft)
        log.write_draft(draft)
    log.close()
    built_on = [d.built_on for d in drafts]  # type: ignore[attr-defined]
    expected = threading.current_thread().name if durability == "sync" else "kzai-audit-writer"
    assert built_on == [[expected]] * 5
    ids = [e.record.id for e in read_verified(tmp_path / "audit")]
    assert ids == [x for n in range(5) for x in (f"r-{100 + n}", f"r-{n}")]


def test_the_memory_sink_keeps_a_draft_at_once_and_the_null_sink_never_builds_it() -> None:
    memory, null = kg.MemorySink(), kg.NullSink()
    kept, dropped = CountingDraft(sample_record(1)), CountingDraft(sample_record(2))
    memory.write_draft(kept)
    null.write_draft(dropped)
    assert memory.records == [kept.record]
    assert (len(kept.built_on), dropped.built_on) == (1, [])


def test_a_sink_without_write_draft_records_an_unwritable_explanation_as_such() -> None:
    sink = WriteOnlySink()
    guard = consenting_guard(sink)
    # made without validation: the model refuses a lone surrogate in every text
    unwritable = EXPLANATION.model_copy(update={"consequences": "granted \ud800"})
    with client_of(guard, unwritable) as client:
        answer = client.get("/decide", headers={"X-Subject-Id": SUBJECT})
        guard.explanations.flush()
        kept = guard.explanation(answer.headers["ai-decision-id"])
    [record] = [r for r in sink.records if r.kind is kg.EventKind.DECISION]
    assert (answer.status_code, kept) == (200, None)
    assert (record.explanation_digest, record.detail) == (
        None,
        "explanation could not be written as JSON",
    )
