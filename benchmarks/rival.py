"""``ai-audit-trail`` (PyPI), the published library the audit log is compared with.

It seals each Decision Receipt on its own: a pydantic model dumped to sorted-key JSON,
SHA-256 of it, an Ed25519 signature (PyNaCl), linked to the previous receipt's hash, kept in
an in-memory store (it has no durable file mode; Redis is optional). Verification re-dumps,
re-hashes and checks every signature and link. Its per-record cost is dominated by the
signature, which is why the signed log signs checkpoints, not records.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from benchmarks.records import decision_record

NAME = "ai-audit-trail"


def missing() -> str | None:
    """Why the rival cannot be measured, or None."""
    try:
        import ai_audit  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        return f"{NAME} is not installed ({exc}); pip install ai-audit-trail"
    return None


class Rival:
    """One fresh receipt store, with the library's own collector and verifier."""

    def __init__(self, capacity: int) -> None:
        import nacl.signing
        from ai_audit import AuditConfig, ReceiptStore, init_audit_config

        logging.getLogger("ai_audit").setLevel(logging.ERROR)
        seed = nacl.signing.SigningKey.generate().encode().hex()
        init_audit_config(AuditConfig(signing_key_hex=seed, receipt_max_size=capacity))
        self.store = ReceiptStore(max_size=capacity)

    def append(self, n: int, start: int = 0) -> float:
        """Emit ``n`` receipts as the library's quick start does; returns seconds."""
        from ai_audit import ReceiptAction, ReceiptCollector

        store = self.store
        t0 = time.perf_counter()
        for i in range(start, start + n):
            record = decision_record(i)
            collector = ReceiptCollector(
                trace_id=record.id, tenant_id="bench", model_id="scorer/1.4"
            )
            collector.set_input(record.subject or "")
            collector.add_check("consent", score=1.0, threshold=0.5)
            collector.set_output(record.verdict or "")
            collector.set_action(ReceiptAction.ALLOW)
            collector.add_reason(record.reason or "")
            collector.emit(store)
            collector.cleanup()
        return time.perf_counter() - t0

    def receipts(self) -> list[Any]:
        return list(self.store._receipts.values())

    def verify(self) -> float:
        """Verify every receipt of the store; returns seconds."""
        from ai_audit import get_verify_key_hex, verify_chain

        receipts = self.receipts()
        key = get_verify_key_hex()
        t0 = time.perf_counter()
        result = verify_chain(receipts, key)
        elapsed = time.perf_counter() - t0
        if not result.valid:
            raise RuntimeError(f"{NAME} verification failed: {result.error}")
        return elapsed
