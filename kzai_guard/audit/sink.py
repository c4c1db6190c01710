"""The audit sink interface, and the two simple sinks the library ships.

A sink takes :class:`~kzai_guard.audit.record.AuditRecord` objects from the guard. The signed,
tamper-evident log (:mod:`kzai_guard.audit.log`) is the production sink; :class:`MemorySink`
serves tests and :class:`NullSink` switches the trail off explicitly.

Contract:

- :meth:`AuditSink.write` must not block on I/O in ``async`` durability; it returns ``None`` once
  the record is accepted. A sink with ``sync`` durability returns a
  :class:`concurrent.futures.Future` that resolves when the record is on disk; the guard releases
  the decision's response only then.
- ``write`` raises :class:`~kzai_guard.errors.AuditUnavailable` when it cannot accept the record,
  and :attr:`AuditSink.healthy` turns false; the guard then refuses significant decisions (fail
  closed) before their decision function runs.
- A sink may also offer ``write_draft(draft)``, with the same contract as ``write``, for a
  :class:`RecordDraft`: a record whose building (its explanation's JSON and digest, its
  pseudonyms) the sink's own writer does, off the caller's thread. The guard uses it where a
  sink offers it (the signed log does, as do both sinks here) and ``write`` otherwise.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Protocol, runtime_checkable

from kzai_guard.audit.record import AuditRecord, EventKind

__all__ = ["AuditSink", "MemorySink", "NullSink", "RecordDraft"]


class RecordDraft(Protocol):
    """An audit record still to be built: accepted by a sink's ``write_draft``, built by the
    sink's writer. :meth:`build` never raises and is called once."""

    def build(self) -> AuditRecord:
        """The record."""
        ...


@runtime_checkable
class AuditSink(Protocol):
    """Where the guard sends audit records."""

    @property
    def healthy(self) -> bool:
        """False while the sink cannot accept records."""
        ...

    def write(self, record: AuditRecord) -> Future[None] | None:
        """Accept one record; a returned future resolves once the record is durable."""
        ...

    def close(self) -> None:
        """Flush what was accepted and release resources; later writes are refused."""
        ...


class MemorySink:
    """Keeps records in a list, in order; for tests and examples.

    ``fail`` makes the sink refuse records, to exercise fail-closed behaviour.
    """

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self.fail = False
        self._lock = threading.Lock()

    @property
    def healthy(self) -> bool:
        return not self.fail

    def write(self, record: AuditRecord) -> None:
        from kzai_guard.errors import AuditUnavailable

        if self.fail:
            raise AuditUnavailable("the memory sink was told to fail")
        with self._lock:
            self.records.append(record)

    def write_draft(self, draft: RecordDraft) -> None:
        """Build ``draft`` at once and keep its record (tests read :attr:`records` at once)."""
        self.write(draft.build())

    def close(self) -> None:
        """Nothing to release."""

    def of_kind(self, kind: EventKind) -> list[AuditRecord]:
        """The records of one kind, in order."""
        with self._lock:
            return [r for r in self.records if r.kind is kind]


class NullSink:
    """Drops every record. Only for benchmarks and explicit opt-out; never the default."""

    healthy = True

    def write(self, record: AuditRecord) -> None:
        """Drop the record."""

    def write_draft(self, draft: RecordDraft) -> None:
        """Drop the draft unbuilt."""

    def close(self) -> None:
        """Nothing to release."""
