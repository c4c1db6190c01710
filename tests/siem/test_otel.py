"""OpenTelemetry: log records through the API; with no SDK nothing is built."""

from __future__ import annotations

from typing import Any

from opentelemetry._logs import NoOpLogger, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from kzai_guard.audit.record import EventKind
from kzai_guard.siem import OtelDestination, SiemEvent

from .conftest import sample_record


def test_events_become_log_records_with_the_sdk() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    destination = OtelDestination(provider)
    events = [SiemEvent(sample_record(i), i, f"{i:064x}") for i in range(3)]
    destination.deliver(events)
    provider.shutdown()
    logs = [item.log_record for item in exporter.get_finished_logs()]
    assert [log.attributes["kzai.seq"] for log in logs] == [0, 1, 2]  # type: ignore[index]
    first = logs[1]
    assert first.event_name == "kzai_guard.decision"
    assert first.severity_number is SeverityNumber.WARN
    assert first.body == "AI decision blocked"
    assert first.timestamp == events[1].record.time * 1000
    attributes = dict(first.attributes or {})
    assert attributes["kzai.uid"] == "dec-000001:1"
    assert attributes["kzai.kind"] == "decision"
    assert attributes["kzai.verdict"] == "block"
    assert attributes["kzai.policy"] == "credit.scoring"
    assert attributes["kzai.latency_us"] == 1234
    assert "kzai.detail" not in attributes


class _SpyLogger(NoOpLogger):
    def __init__(self) -> None:
        super().__init__("spy")
        self.asked = 0
        self.emitted = 0

    def enabled(self, **kwargs: Any) -> bool:
        self.asked += 1
        return False

    def emit(self, *args: Any, **kwargs: Any) -> None:
        self.emitted += 1


def test_disabled_logger_builds_and_emits_nothing() -> None:
    spy = _SpyLogger()
    OtelDestination(logger=spy).deliver(
        [SiemEvent(sample_record(i, kind=EventKind.CONSENT_GRANTED), i, "0") for i in range(5)]
    )
    assert (spy.asked, spy.emitted) == (5, 0)


def test_without_sdk_the_global_logger_is_a_no_op() -> None:
    OtelDestination().deliver([SiemEvent(sample_record(0), 0, "0")])
