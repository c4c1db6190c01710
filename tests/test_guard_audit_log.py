"""The guard writes the signed audit log by default; erasure keeps it verifiable."""

from __future__ import annotations

from pathlib import Path

import pytest

import kzai_guard as kg
import kzai_guard.testing
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.verify import verify_log
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

POLICY = kg.DecisionPolicy(
    name="loan",
    purpose="credit",
    significance="legal-effect",
    autonomy="high",
    risk="high",
    model=kg.ModelInfo(name="m", version="1"),
)


def make_guard(directory: Path) -> kg.Guard:
    return kg.Guard(
        [POLICY],
        store="memory://",
        audit=directory,
        pseudonym_key=b"k" * 32,
        contact="c",
        subject=GATEWAY_SUBJECT,
    )


def decide(guard: kg.Guard) -> str:
    @guard.decision("loan")
    def run() -> str:
        kg.explain(EXPLANATION)
        return "done"

    with kg.decision_context("A-1"):
        return run()


def keyring(directory: Path) -> Keyring:
    return Keyring.load(sorted((directory / "keys").glob("*.pub")))


def test_the_default_audit_sink_is_the_signed_log_and_it_verifies(tmp_path: Path) -> None:
    log = tmp_path / "audit"
    guard = make_guard(log)
    guard.consents.grant("A-1", "credit", "v1")
    assert decide(guard) == "done"
    guard.close()
    entries = list(read_verified(log))
    assert [e.record.kind for e in entries] == [kg.EventKind.CONSENT_GRANTED, kg.EventKind.DECISION]
    assert entries[1].record.verdict == "allow"
    report = verify_log(log, keyring(log))
    assert (report.ok, report.records) == (True, 2)


def test_erasing_a_subject_hides_its_fields_and_the_log_still_verifies(tmp_path: Path) -> None:
    log = tmp_path / "audit"
    guard = make_guard(log)
    guard.consents.grant("A-1", "credit", "v1")
    guard.consents.grant("B-2", "credit", "v1")
    guard.erase_subject("A-1")
    guard.close()
    subjects = [e.record.subject for e in read_verified(log)]
    assert subjects[0] == "[erased]"
    assert subjects[1] == guard.auditor.pseudonym("B-2")
    assert verify_log(log, keyring(log)).ok


def test_erasure_needs_a_sink_that_seals_personal_fields() -> None:
    guard, _ = kg.testing.memory_guard([POLICY], contact="c", subject=GATEWAY_SUBJECT)
    with pytest.raises(kg.ConfigurationError, match="signed audit log"):
        guard.erase_subject("A-1")
    guard.close()
