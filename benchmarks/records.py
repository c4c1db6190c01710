"""Realistic audit records: what one guarded credit decision writes to the trail (~500 bytes)."""

from __future__ import annotations

import hashlib

from kzai_guard.audit.record import AuditRecord, EventKind

_POLICY_DIGEST = hashlib.sha256(b"credit-scoring policy").hexdigest()
_EXPLANATION_DIGEST = hashlib.sha256(b"score above the approval threshold").hexdigest()
_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def decision_record(i: int) -> AuditRecord:
    """The ``i``-th allowed credit decision; every record differs in id, subject and time."""
    return AuditRecord(
        id=f"dec-{i:012d}",
        time=1_764_000_000_000_000 + i * 1_000,
        kind=EventKind.DECISION,
        policy="credit-scoring",
        policy_digest=_POLICY_DIGEST,
        subject=hashlib.blake2s(i.to_bytes(8, "big"), digest_size=16).hexdigest(),
        purpose="credit-scoring",
        profile="kz",
        mode="enforce",
        significance="legal-effect",
        autonomy="high",
        basis="consent",
        verdict="allow",
        reason="consent-valid",
        explanation_digest=_EXPLANATION_DIGEST,
        model="scorer/1.4",
        trace_id=_TRACE,
        latency_us=180 + i % 50,
    )


def records(n: int) -> list[AuditRecord]:
    """``n`` distinct decision records, made before any timing starts."""
    return [decision_record(i) for i in range(n)]
