"""The audit record of an allowed decision names everything an auditor needs, and no raw id."""

from __future__ import annotations

import hashlib

import kzai_guard as kg
from kzai_guard.core.policy import policy_digest
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN


def test_an_allowed_decision_is_recorded_whole() -> None:
    guard, sink = memory_guard([LOAN], contact="credit@example.kz", subject=GATEWAY_SUBJECT)

    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    guard.consents.grant("A-1", "credit-scoring", "v1")
    with kg.decision_context("A-1") as context:
        score()

    [record] = sink.of_kind(kg.EventKind.DECISION)
    assert context.decision_id is not None
    stored = guard.explanation(context.decision_id)
    assert stored is not None and (stored.decision_id, stored.policy, stored.subject_ref) == (
        context.decision_id,
        "loan_approval",
        guard.auditor.pseudonym("A-1"),
    )
    fields = record.as_dict()
    time, latency = fields.pop("time"), fields.pop("latency_us")
    assert fields == {
        "id": context.decision_id,
        "kind": "decision",
        "policy": "loan_approval",
        "policy_digest": policy_digest(guard.policy("loan_approval")),
        "subject": guard.auditor.pseudonym("A-1"),
        "purpose": "credit-scoring",
        "profile": "kz",
        "mode": "enforce",
        "significance": "legal-effect",
        "autonomy": "high",
        "basis": "consent",
        "verdict": "allow",
        "reason": "consent",
        "explanation_digest": hashlib.sha256(stored.body).hexdigest(),
        "model": "scorer/2.1",
    }
    assert isinstance(time, int) and time > 0
    assert isinstance(latency, int) and latency >= 0
    assert fields["subject"] != "A-1"
    guard.close()
