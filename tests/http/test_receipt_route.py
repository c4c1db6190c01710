"""The person's receipt route: their decision's tlog-proof, checkable offline."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.receipt import verify_receipt
from kzai_guard.audit.segments import read_origin
from kzai_guard.testing import memory_guard
from tests.http.test_person_routes import app_with, loan_policy


def test_the_person_gets_a_receipt_for_their_own_decision_only(tmp_path: Path) -> None:
    signer = Signer.generate("log-key")
    guard = kg.Guard(
        [loan_policy()],
        store="memory://",
        audit=tmp_path / "audit",
        audit_signer=signer,
        durability="sync",
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        subject=kg.from_path_param("applicant"),
        person=kg.from_header("X-Person"),
        contact="c",
    )
    client = TestClient(app_with(guard, []))
    guard.consents.grant("A-1", "credit", "v1")
    decision_id = client.post("/loans/A-1").headers["ai-decision-id"]
    url = f"/ai-decisions/{decision_id}/receipt"
    pending = client.get(url, headers={"X-Person": "A-1"})
    assert pending.status_code == 503
    assert pending.json()["type"] == "urn:kzai-guard:problem:receipt-pending"
    guard.sink.checkpoint()  # type: ignore[attr-defined]
    answer = client.get(url, headers={"X-Person": "A-1"})
    assert answer.status_code == 200
    origin = guard.sink.origin  # type: ignore[attr-defined]
    assert read_origin(tmp_path / "audit") == origin
    check = verify_receipt(
        answer.text, Keyring([signer.public_key]), origin, decision_id=decision_id
    )
    assert check.ok, check.message
    # the guard's new log is format 2: its leaf proves the record, format 1's does not
    for log_format, ok in ((2, True), (1, False)):
        known = verify_receipt(
            answer.text, Keyring([signer.public_key]), origin, log_format=log_format
        )
        assert known.ok is ok, known.message
    assert client.get(url, headers={"X-Person": "A-2"}).status_code == 404
    guard.close()


def test_no_receipt_without_a_signed_file_log() -> None:
    guard, _ = memory_guard([loan_policy()], subject=kg.from_header("X-Person"), contact="c")
    client = TestClient(app_with(guard, []))
    guard.consents.grant("A-1", "credit", "v1")
    decision_id = client.post("/loans/A-1", headers={"X-Person": "A-1"}).headers["ai-decision-id"]
    answer = client.get(f"/ai-decisions/{decision_id}/receipt", headers={"X-Person": "A-1"})
    assert answer.status_code == 404
    guard.close()
