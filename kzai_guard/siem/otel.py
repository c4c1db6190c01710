"""OpenTelemetry log records through the ``opentelemetry-api`` logs API.

Each event becomes one log record: ``event_name`` ``kzai_guard.<kind>``, the fixed title as the
body, the record time as the timestamp, the level as ``severity_number`` (INFO 9, NOTICE 10,
WARNING 13, HIGH 17) and the event's fields as attributes under ``kzai.`` (``kzai.uid``,
``kzai.seq``, ``kzai.line_hash``, ``kzai.origin`` when the log's origin is set, ``kzai.outcome``
and every record field that is set).

The library depends on the API only. Without an SDK (or with a provider that drops the level)
:meth:`OtelDestination.deliver` asks ``logger.enabled()`` first and builds nothing, so it
costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from opentelemetry._logs import Logger, LoggerProvider, SeverityNumber, get_logger

from kzai_guard.audit.record import AuditRecord
from kzai_guard.siem._event import Level, SiemEvent, classify
from kzai_guard.siem.settings import check_origin, origin_of_log

__all__ = ["OTEL_SEVERITY", "OtelDestination"]

OTEL_SEVERITY: dict[Level, SeverityNumber] = {
    Level.INFO: SeverityNumber.INFO,
    Level.NOTICE: SeverityNumber.INFO2,
    Level.WARNING: SeverityNumber.WARN,
    Level.HIGH: SeverityNumber.ERROR,
}
"""OpenTelemetry severity number for each level."""

_FIELDS = tuple(f"kzai.{name}" for name in AuditRecord.__slots__)


class OtelDestination:
    """Emits events as OpenTelemetry log records (a shipper destination).

    ``logger_provider`` defaults to the global provider; ``logger`` may be injected instead.
    ``origin`` is the log's origin, written as ``kzai.origin``; the
    :class:`~kzai_guard.siem.Shipper` sets it from the log it reads (:meth:`for_log`).
    """

    format = "otel"

    def __init__(
        self,
        logger_provider: LoggerProvider | None = None,
        *,
        logger: Logger | None = None,
        origin: str | None = None,
    ) -> None:
        from kzai_guard.siem.settings import _version

        self._logger = logger or get_logger(
            "kzai_guard.siem", _version(), logger_provider=logger_provider
        )
        self._names = tuple(zip(AuditRecord.__slots__, _FIELDS, strict=True))
        self.origin = None if origin is None else check_origin(origin)
        """The log's origin written into every record, or ``None``."""

    def for_log(self, origin: str | None) -> Self:
        """This destination for the log named ``origin``; itself if it already is.

        Raises :class:`~kzai_guard.errors.ConfigurationError` if it was made for another origin.
        """
        origin = origin_of_log(self.origin, origin)
        if origin == self.origin:
            return self
        return type(self)(logger=self._logger, origin=origin)

    def deliver(self, events: Sequence[SiemEvent]) -> None:
        """Emit one log record per event; a no-op without an SDK."""
        logger = self._logger
        origin = self.origin
        for event in events:
            record = event.record
            c = classify(record)
            severity = OTEL_SEVERITY[c.level]
            name = f"kzai_guard.{record.kind.value}"
            if not logger.enabled(severity_number=severity, event_name=name):
                continue
            attributes: dict[str, Any] = {
                "kzai.uid": event.uid,
                "kzai.seq": event.seq,
                "kzai.line_hash": event.line_hash,
                "kzai.outcome": c.outcome.value,
            }
            if not event.verified:
                attributes["kzai.unverified"] = True
            if origin is not None:
                attributes["kzai.origin"] = origin
            for field, key in self._names:
                value = getattr(record, field)
                if value is not None:
                    attributes[key] = value.value if field == "kind" else value
            logger.emit(
                timestamp=record.time * 1000,
                severity_number=severity,
                severity_text=severity.name,
                body=c.title,
                attributes=attributes,
                event_name=name,
            )

    def close(self) -> None:
        """Nothing to release; flushing is the SDK's job."""
