"""JSON Lines: one JSON object per line, the record exactly as it is in the log.

``{"uid", "seq", "line_hash", "level", "outcome", "record": {...}, "origin"}`` (and
``"unverified": true`` before ``origin`` for an event read without public keys) where
``record`` is :meth:`~kzai_guard.audit.record.AuditRecord.as_dict` (``None`` fields left out)
and ``origin`` the log's origin (left out when not set). JSON escapes every control character
(line feed included) inside strings, so a value round-trips exactly and can never end the line;
no sanitising is needed.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter
from typing import Any

import orjson

from kzai_guard.audit.record import AuditRecord
from kzai_guard.siem._event import Level, SiemEvent, classify
from kzai_guard.siem.formats import SettingsEncoder
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["LEVEL_NAMES", "JsonLinesEncoder", "event_document", "record_dict"]


class JsonLinesEncoder(SettingsEncoder):
    """Renders events as JSON objects, one per line; pure.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> rec = AuditRecord(id="r1", time=1, kind=EventKind.DECISION, verdict="allow")
    >>> JsonLinesEncoder(EncoderSettings(hostname="h")).encode(SiemEvent(rec, 3, "ab"))
    b'{"uid":"r1:3","seq":3,"line_hash":"ab","level":"info","outcome":"success","record":{"id":"r1","time":1,"kind":"decision","verdict":"allow"}}'
    """

    format = "jsonl"
    media_type = "application/x-ndjson"

    def __init__(self, settings: EncoderSettings | None = None) -> None:
        super().__init__(settings or EncoderSettings())
        self._dumps = orjson.dumps
        self._origin = self.settings.origin

    def encode(self, event: SiemEvent) -> bytes:
        """One JSON object as UTF-8 bytes, without a line terminator."""
        return self._dumps(event_document(event, self._origin))


def event_document(event: SiemEvent, origin: str | None = None) -> dict[str, Any]:
    """The event as a JSON-ready dict (the JSON Lines object and the Splunk HEC ``event``).

    ``origin``, the log's origin, is the last key when given.
    """
    record = event.record
    c = classify(record)
    doc = {
        "uid": event.uid,
        "seq": event.seq,
        "line_hash": event.line_hash,
        "level": LEVEL_NAMES[c.level],
        "outcome": c.outcome.value,
        "record": record_dict(record),
    }
    if not event.verified:
        doc["unverified"] = True
    if origin is not None:
        doc["origin"] = origin
    return doc


def record_dict(record: AuditRecord) -> dict[str, Any]:
    """:meth:`AuditRecord.as_dict`, faster: ``None`` fields left out, the kind as its value."""
    out: dict[str, Any] = {"id": record.id, "time": record.time, "kind": record.kind.value}
    for name, value in zip(_OPTIONAL, _optional_values(record), strict=True):
        if value is not None:
            out[name] = value
    return out


LEVEL_NAMES: dict[Level, str] = {level: level.name.lower() for level in Level}
"""The lower-case level names written into JSON (``info``, ``notice``, ...)."""

_OPTIONAL = tuple(f.name for f in fields(AuditRecord) if f.name not in ("id", "time", "kind"))
_optional_values = attrgetter(*_OPTIONAL)
