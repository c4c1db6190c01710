"""JSON Lines: one JSON object per line, the record exactly as it is in the log.

``{"uid", "seq", "line_hash", "level", "outcome", "record": {...}}`` where ``record`` is
:meth:`~kzai_guard.audit.record.AuditRecord.as_dict` (``None`` fields left out). JSON escapes
every control character (line feed included) inside strings, so a value round-trips exactly and
can never end the line; no sanitising is needed.
"""

from __future__ import annotations

from typing import Any

import orjson

from kzai_guard.siem._event import SiemEvent, classify
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["JsonLinesEncoder", "event_document"]


class JsonLinesEncoder:
    """Renders events as JSON objects, one per line; pure.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> rec = AuditRecord(id="r1", time=1, kind=EventKind.DECISION, verdict="allow")
    >>> JsonLinesEncoder(EncoderSettings(hostname="h")).encode(SiemEvent(rec, 3, "ab"))
    b'{"uid":"r1:3","seq":3,"line_hash":"ab","level":"info","outcome":"success","record":{"id":"r1","time":1,"kind":"decision","verdict":"allow"}}'
    """

    format = "jsonl"
    media_type = "application/x-ndjson"

    def __init__(self, settings: EncoderSettings | None = None) -> None:
        self._dumps = orjson.dumps

    def encode(self, event: SiemEvent) -> bytes:
        """One JSON object as UTF-8 bytes, without a line terminator."""
        return self._dumps(event_document(event))


def event_document(event: SiemEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict (the JSON Lines object and the Splunk HEC ``event``)."""
    c = classify(event.record)
    return {
        "uid": event.uid,
        "seq": event.seq,
        "line_hash": event.line_hash,
        "level": c.level.name.lower(),
        "outcome": c.outcome.value,
        "record": event.record.as_dict(),
    }
