"""Splunk HTTP Event Collector (HEC) event objects.

Each event is one object ``{"time", "host", "source", "sourcetype", "index", "event",
"fields"}`` for ``POST /services/collector/event``; a batch is the objects one after the other,
separated by a line feed. ``time`` is the record time in seconds (microseconds as the fraction);
``event`` is the JSON Lines document (:func:`kzai_guard.siem.jsonl.event_document`); ``fields``
are index-time fields, strings only: ``uid``, ``kind``, ``level``, ``outcome`` and, when set,
``verdict``, ``policy`` and ``origin`` (the log's origin, also in ``event``). ``index`` is left
out unless configured.
"""

from __future__ import annotations

from typing import Any

import orjson

from kzai_guard.siem._event import SiemEvent, classify
from kzai_guard.siem.formats import SettingsEncoder
from kzai_guard.siem.jsonl import LEVEL_NAMES, event_document
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["HecEncoder"]


class HecEncoder(SettingsEncoder):
    """Renders events as Splunk HEC event objects; pure, built once per settings.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> rec = AuditRecord(id="r1", time=1_500_000, kind=EventKind.DECISION, verdict="allow")
    >>> obj = HecEncoder(EncoderSettings(hostname="h")).document(SiemEvent(rec, 1, "ab"))
    >>> obj["time"], obj["fields"]["verdict"]
    (1.5, 'allow')
    """

    format = "hec"
    media_type = "application/json"

    def __init__(self, settings: EncoderSettings) -> None:
        super().__init__(settings)
        self._origin = settings.origin
        self._base: dict[str, Any] = {
            "host": settings.hostname,
            "source": settings.hec_source,
            "sourcetype": settings.hec_sourcetype,
        }
        if settings.hec_index is not None:
            self._base["index"] = settings.hec_index

    def document(self, event: SiemEvent) -> dict[str, Any]:
        """The HEC event object as a dict."""
        record = event.record
        c = classify(record)
        fields = {
            "uid": event.uid,
            "kind": record.kind.value,
            "level": LEVEL_NAMES[c.level],
            "outcome": c.outcome.value,
        }
        if not event.verified:
            fields["unverified"] = "true"
        if record.verdict is not None:
            fields["verdict"] = record.verdict
        if record.policy is not None:
            fields["policy"] = record.policy
        origin = self._origin
        if origin is not None:
            fields["origin"] = origin
        obj = {"time": record.time / 1_000_000, **self._base}
        obj["event"] = event_document(event, origin)
        obj["fields"] = fields
        return obj

    def encode(self, event: SiemEvent) -> bytes:
        """One HEC event object as UTF-8 JSON, without a separator."""
        return orjson.dumps(self.document(event))
