"""Elastic Common Schema (ECS) JSON documents, one per line.

A decision becomes ``event.kind: "event"``, ``event.category: ["api"]`` and ``event.type``
``["allowed"]`` (verdict ``allow``), ``["denied"]`` (``block``, or a withheld result) or
``["info"]`` (``route``); consent, objection and review records are ``creation``/``deletion``/
``change`` (a reviewer's look at a case ``access``). ``event.action`` is the event kind,
``event.reason`` the record's reason, the policy is ``rule.name`` (digest in ``rule.version``,
profile in ``rule.ruleset``, purpose in ``rule.category``), ``trace.id`` the trace id. Everything
else is kept, exactly, under the custom ``kzai`` field set, with the log's origin (when set) as
``kzai.origin``: ECS's nearest field, ``event.provider``, names the software or subsystem that
produced an event, not a log. JSON escaping makes every value round-trip; nothing is sanitised.
"""

from __future__ import annotations

from typing import Any

import orjson

from kzai_guard.audit.record import EventKind
from kzai_guard.siem._event import Level, SiemEvent, classify
from kzai_guard.siem._text import rfc3339
from kzai_guard.siem.cef import CEF_SEVERITY
from kzai_guard.siem.formats import SettingsEncoder
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["ECS_LOG_LEVEL", "ECS_VERSION", "EcsEncoder"]

ECS_VERSION = "8.17.0"
"""The ECS version the documents follow (``ecs.version``)."""

ECS_LOG_LEVEL: dict[Level, str] = {
    Level.INFO: "info",
    Level.NOTICE: "notice",
    Level.WARNING: "warning",
    Level.HIGH: "error",
}
"""``log.level`` for each level; ``event.severity`` is the CEF severity (3, 5, 7, 9)."""

_KIND_TYPE: dict[EventKind, str] = {
    EventKind.CONSENT_GRANTED: "creation",
    EventKind.CONSENT_WITHDRAWN: "deletion",
    EventKind.CONSENT_WITHDRAWAL_REFUSED: "denied",
    EventKind.OBJECTION_RECORDED: "creation",
    EventKind.OBJECTION_WITHDRAWN: "deletion",
    EventKind.REVIEW_OPENED: "creation",
    EventKind.REVIEW_CLAIMED: "change",
    EventKind.REVIEW_RELEASED: "change",
    EventKind.REVIEW_ESCALATED: "change",
    EventKind.REVIEW_CASE_VIEWED: "access",
    EventKind.REVIEW_DUE_SOON: "info",
    EventKind.REVIEW_OVERDUE: "info",
    EventKind.DECISION_OVERRIDDEN: "change",
    EventKind.SWITCH_SUSPENDED: "change",
    EventKind.SWITCH_RESUMED: "change",
    EventKind.ROUTING_STARTED: "change",
    EventKind.ROUTING_CLEARED: "change",
    EventKind.DISPARITY_DETECTED: "info",
    EventKind.DECISION_WITHHELD: "denied",
    EventKind.DECISION_FAILED: "info",
}
_VERDICT_TYPE = {"allow": "allowed", "block": "denied", "route": "info"}
_KZAI_FIELDS = (
    "id",
    "time",
    "verdict",
    "subject",
    "purpose",
    "profile",
    "mode",
    "significance",
    "autonomy",
    "basis",
    "reviewer",
    "review_id",
    "explanation_digest",
    "data_basis_digest",
    "model",
    "latency_us",
    "detail",
)


class EcsEncoder(SettingsEncoder):
    """Renders events as ECS JSON documents; pure, built once per settings.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> rec = AuditRecord(id="r1", time=0, kind=EventKind.DECISION, verdict="block")
    >>> doc = EcsEncoder(EncoderSettings(hostname="h")).document(SiemEvent(rec, 1, "ab"))
    >>> doc["event"]["type"], doc["event"]["outcome"]
    (['denied'], 'failure')
    """

    format = "ecs"
    media_type = "application/x-ndjson"

    def __init__(self, settings: EncoderSettings) -> None:
        super().__init__(settings)
        self._origin = settings.origin
        self._ecs = {"version": ECS_VERSION}
        self._service = {"name": settings.product, "version": settings.product_version}
        self._host = {"name": settings.hostname}

    def document(self, event: SiemEvent) -> dict[str, Any]:
        """The ECS document as a dict."""
        record = event.record
        c = classify(record)
        ecs_event: dict[str, Any] = {
            "kind": "event",
            "category": ["api"],
            "type": [_event_type(record.kind, record.verdict)],
            "action": record.kind.value,
            "outcome": c.outcome.value,
            "id": event.uid,
            "sequence": event.seq,
            "severity": CEF_SEVERITY[c.level],
            "hash": event.line_hash,
            "dataset": "kzai_guard.audit",
            "module": "kzai_guard",
        }
        if record.reason is not None:
            ecs_event["reason"] = record.reason
        if record.latency_us is not None:
            ecs_event["duration"] = record.latency_us * 1000
        doc: dict[str, Any] = {
            "@timestamp": rfc3339(record.time),
            "message": c.title,
            "ecs": self._ecs,
            "event": ecs_event,
            "log": {"level": ECS_LOG_LEVEL[c.level]},
            "service": self._service,
            "host": self._host,
        }
        rule: dict[str, str] = {}
        if record.policy is not None:
            rule["name"] = record.policy
        if record.policy_digest is not None:
            rule["version"] = record.policy_digest
        if record.profile is not None:
            rule["ruleset"] = record.profile
        if record.purpose is not None:
            rule["category"] = record.purpose
        if rule:
            doc["rule"] = rule
        if record.trace_id is not None:
            doc["trace"] = {"id": record.trace_id}
        user: dict[str, Any] = {}
        if record.reviewer is not None:
            user["id"] = record.reviewer
        if record.subject is not None:
            user["target"] = {"id": record.subject}
        if user:
            doc["user"] = user
        kzai: dict[str, Any] = {"seq": event.seq}
        if not event.verified:
            kzai["unverified"] = True
        if self._origin is not None:
            kzai["origin"] = self._origin
        for name in _KZAI_FIELDS:
            value = getattr(record, name)
            if value is not None:
                kzai[name] = value
        doc["kzai"] = kzai
        return doc

    def encode(self, event: SiemEvent) -> bytes:
        """One ECS document as UTF-8 JSON, without a line terminator."""
        return orjson.dumps(self.document(event))


def _event_type(kind: EventKind, verdict: str | None) -> str:
    fixed = _KIND_TYPE.get(kind)
    if fixed is not None:
        return fixed
    if verdict is not None and verdict in _VERDICT_TYPE:
        return _VERDICT_TYPE[verdict]
    return "info"
