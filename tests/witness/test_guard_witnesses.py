"""A guard whose audit log has witnesses: decisions do not wait for them."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

import kzai_guard as kg
from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.witnesses import WitnessEndpoint, Witnesses
from kzai_guard.testing import MemorySink
from tests.http.test_person_routes import app_with, loan_policy
from tests.samples import GATEWAY_SUBJECT

from .helpers import free_port


def _offline_witnesses() -> Witnesses:
    key = Cosigner.generate("w1.example").public_key
    return Witnesses([WitnessEndpoint.of(f"http://127.0.0.1:{free_port()}", key)])


def test_decisions_are_made_while_the_only_witness_is_down(tmp_path: Path) -> None:
    witnesses = _offline_witnesses()
    guard = kg.Guard(
        [loan_policy()],
        store="memory://",
        audit=tmp_path / "audit",
        audit_signer=Signer.generate("log-key"),
        audit_witnesses=witnesses,
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        subject=kg.from_header("X-Person"),
        contact="c",
    )
    client = TestClient(app_with(guard, []))
    guard.consents.grant("A-1", "credit", "v1")
    for _ in range(5):
        assert client.post("/loans/A-1", headers={"X-Person": "A-1"}).status_code == 200
    checkpoint = guard.sink.checkpoint()  # type: ignore[attr-defined]
    assert checkpoint is not None and checkpoint.checkpoint.size >= 5
    assert not witnesses.wait(checkpoint.checkpoint.size, timeout=0)
    guard.close()


def test_witnesses_without_a_log_directory_are_refused() -> None:
    with pytest.raises(kg.ConfigurationError, match="audit= a directory"):
        kg.Guard(
            [loan_policy()],
            store="memory://",
            audit=MemorySink(),
            audit_witnesses=_offline_witnesses(),
            subject=GATEWAY_SUBJECT,
            contact="c",
        )
