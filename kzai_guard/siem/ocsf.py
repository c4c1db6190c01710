"""OCSF API Activity events (class 6003, category 6 Application Activity).

``type_uid = 600300 + activity_id``. Consents, objections and opened reviews are *Create* (1);
their withdrawals *Delete* (4); completed, claimed, released and escalated reviews, overrides and
kill-switch changes *Update* (3); a reviewer's look at a case *Read* (2); decisions *Other* (99,
``activity_name`` "Decision"). The verdict is the decision of ``actor.authorizations[0]``
(``allowed``, ``denied``, ``routed``, or the verdict as written) under the policy (``policy.name``,
digest as ``policy.uid``). ``status_id`` is 1 Success, 2 Failure, 99 Other for a decision routed to
a human and 0 Unknown otherwise. ``severity_id`` is 1 Informational, 2 Low, 3 Medium, 4 High. The
data subject's pseudonym is a resource (``type: "data_subject"``). The log's origin, when set, is
``metadata.log_provider`` (OCSF: "the logging provider or logging service that logged the event");
every other field is kept in ``unmapped``. JSON escaping makes every value round-trip; nothing is
sanitised.
"""

from __future__ import annotations

from typing import Any

import orjson

from kzai_guard.audit.record import EventKind
from kzai_guard.siem._event import Level, Outcome, SiemEvent, classify
from kzai_guard.siem.formats import SettingsEncoder
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["API_ACTIVITY_CLASS_UID", "OCSF_SEVERITY", "OcsfEncoder"]

API_ACTIVITY_CLASS_UID = 6003
"""OCSF API Activity."""

OCSF_SEVERITY: dict[Level, tuple[int, str]] = {
    Level.INFO: (1, "Informational"),
    Level.NOTICE: (2, "Low"),
    Level.WARNING: (3, "Medium"),
    Level.HIGH: (4, "High"),
}
"""``severity_id`` and ``severity`` for each level."""

_ACTIVITY: dict[EventKind, tuple[int, str]] = {
    EventKind.DECISION: (99, "Decision"),
    EventKind.DECISION_WITHHELD: (99, "Decision"),
    EventKind.DECISION_FAILED: (99, "Decision"),
    EventKind.REVIEW_OPENED: (1, "Create"),
    EventKind.REVIEW_COMPLETED: (3, "Update"),
    EventKind.REVIEW_CLAIMED: (3, "Update"),
    EventKind.REVIEW_RELEASED: (3, "Update"),
    EventKind.REVIEW_ESCALATED: (3, "Update"),
    EventKind.REVIEW_CASE_VIEWED: (2, "Read"),
    EventKind.REVIEW_DUE_SOON: (99, "Other"),
    EventKind.REVIEW_OVERDUE: (99, "Other"),
    EventKind.DECISION_OVERRIDDEN: (3, "Update"),
    EventKind.CONSENT_GRANTED: (1, "Create"),
    EventKind.CONSENT_WITHDRAWN: (4, "Delete"),
    EventKind.CONSENT_WITHDRAWAL_REFUSED: (4, "Delete"),
    EventKind.OBJECTION_RECORDED: (1, "Create"),
    EventKind.OBJECTION_WITHDRAWN: (4, "Delete"),
    EventKind.SWITCH_SUSPENDED: (3, "Update"),
    EventKind.SWITCH_RESUMED: (3, "Update"),
    EventKind.ROUTING_STARTED: (3, "Update"),
    EventKind.ROUTING_CLEARED: (3, "Update"),
    EventKind.DISPARITY_DETECTED: (99, "Other"),
}
_DECISION = {"allow": "allowed", "block": "denied", "route": "routed"}
_STATUS: dict[Outcome, tuple[int, str]] = {
    Outcome.SUCCESS: (1, "Success"),
    Outcome.FAILURE: (2, "Failure"),
    Outcome.UNKNOWN: (0, "Unknown"),
}
_UNMAPPED = (
    "id",
    "time",
    "verdict",
    "purpose",
    "profile",
    "mode",
    "significance",
    "autonomy",
    "basis",
    "review_id",
    "explanation_digest",
    "data_basis_digest",
    "model",
    "latency_us",
    "detail",
)


class OcsfEncoder(SettingsEncoder):
    """Renders events as OCSF API Activity JSON objects; pure, built once per settings.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> rec = AuditRecord(id="r1", time=0, kind=EventKind.CONSENT_GRANTED)
    >>> doc = OcsfEncoder(EncoderSettings(hostname="h")).document(SiemEvent(rec, 1, "ab"))
    >>> doc["class_uid"], doc["type_uid"], doc["status_id"]
    (6003, 600301, 1)
    """

    format = "ocsf"
    media_type = "application/x-ndjson"

    def __init__(self, settings: EncoderSettings) -> None:
        super().__init__(settings)
        self._origin = settings.origin
        self._product = {
            "name": settings.product,
            "vendor_name": settings.vendor,
            "version": settings.product_version,
        }
        self._version = settings.ocsf_version
        self._endpoint = {"hostname": settings.hostname}
        self._api = {
            "operation": "",
            "service": {
                "name": settings.product,
                "uid": f"{settings.product}@{settings.hostname}",
                "version": settings.product_version,
            },
        }
        self._app_name = settings.product

    def document(self, event: SiemEvent) -> dict[str, Any]:
        """The OCSF event as a dict."""
        record = event.record
        c = classify(record)
        activity_id, activity_name = _ACTIVITY[record.kind]
        severity_id, severity = OCSF_SEVERITY[c.level]
        if record.verdict == "route":
            status_id, status = 99, "Routed to human review"
        else:
            status_id, status = _STATUS[c.outcome]
        metadata: dict[str, Any] = {
            "version": self._version,
            "uid": event.uid,
            "sequence": event.seq,
            "event_code": record.kind.value,
            "log_name": "kzai_guard.audit",
            "product": self._product,
        }
        if self._origin is not None:
            metadata["log_provider"] = self._origin
        actor: dict[str, Any] = {"app_name": self._app_name}
        if record.verdict is not None or record.policy is not None:
            authorization: dict[str, Any] = {}
            if record.verdict is not None:
                authorization["decision"] = _DECISION.get(record.verdict, record.verdict)
            if record.policy is not None or record.policy_digest is not None:
                policy: dict[str, str] = {}
                if record.policy is not None:
                    policy["name"] = record.policy
                if record.policy_digest is not None:
                    policy["uid"] = record.policy_digest
                authorization["policy"] = policy
            actor["authorizations"] = [authorization]
        if record.reviewer is not None:
            actor["user"] = {"uid": record.reviewer, "type_id": 1, "type": "User"}
        doc: dict[str, Any] = {
            "activity_id": activity_id,
            "activity_name": activity_name,
            "category_uid": 6,
            "category_name": "Application Activity",
            "class_uid": API_ACTIVITY_CLASS_UID,
            "class_name": "API Activity",
            "type_uid": API_ACTIVITY_CLASS_UID * 100 + activity_id,
            "type_name": f"API Activity: {activity_name}",
            "time": record.time // 1000,
            "severity_id": severity_id,
            "severity": severity,
            "status_id": status_id,
            "status": status,
            "message": c.title,
            "metadata": metadata,
            "actor": actor,
            "api": {**self._api, "operation": record.kind.value},
            "src_endpoint": self._endpoint,
        }
        if record.reason is not None:
            doc["status_detail"] = record.reason
        if record.subject is not None:
            doc["resources"] = [{"uid": record.subject, "type": "data_subject"}]
        if record.trace_id is not None:
            doc["trace"] = {"uid": record.trace_id}
            metadata["correlation_uid"] = record.trace_id
            metadata["profiles"] = ["trace"]
        unmapped: dict[str, Any] = {"line_hash": event.line_hash}
        if not event.verified:
            unmapped["unverified"] = True
        for name in _UNMAPPED:
            value = getattr(record, name)
            if value is not None:
                unmapped[name] = value
        doc["unmapped"] = unmapped
        return doc

    def encode(self, event: SiemEvent) -> bytes:
        """One OCSF event as UTF-8 JSON, without a line terminator."""
        return orjson.dumps(self.document(event))
