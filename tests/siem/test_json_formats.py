"""OCSF, ECS, Splunk HEC and JSON Lines: JSON shape, field mapping and exact round trips."""

from __future__ import annotations

import re
from datetime import datetime

import orjson
import pytest
from hypothesis import given, settings
from py_ocsf_models.events.base_event import BaseEvent
from py_ocsf_models.objects.api import API
from py_ocsf_models.objects.metadata import Metadata
from py_ocsf_models.objects.policy import Policy

from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.siem import EncoderSettings, SiemEvent
from kzai_guard.siem.ecs import EcsEncoder
from kzai_guard.siem.hec import HecEncoder
from kzai_guard.siem.jsonl import JsonLinesEncoder
from kzai_guard.siem.ocsf import OcsfEncoder

from .conftest import SETTINGS, events, hostile_origins, sample_record, small_events

OCSF = OcsfEncoder(SETTINGS)
ECS = EcsEncoder(SETTINGS)
HEC = HecEncoder(SETTINGS.model_copy(update={"hec_index": "audit"}))
JSONL = JsonLinesEncoder(SETTINGS)

# The API Activity class (OCSF events/application/api_activity.json) and its base event.
OCSF_REQUIRED = {
    "activity_id",
    "category_uid",
    "class_uid",
    "type_uid",
    "time",
    "severity_id",
    "metadata",
    "actor",
    "api",
    "src_endpoint",
}
OCSF_ACTIVITIES = {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 0: "Unknown", 99: None}

# ECS 8.x: allowed event.type values for event.category "api".
ECS_API_TYPES = {
    "access",
    "admin",
    "allowed",
    "change",
    "creation",
    "deletion",
    "denied",
    "end",
    "info",
    "start",
    "user",
}


def one_line(data: bytes) -> dict[str, object]:
    assert b"\n" not in data and b"\r" not in data
    value = orjson.loads(data)
    assert isinstance(value, dict)
    return value


@given(events())
@settings(max_examples=150, deadline=None)
def test_jsonl_round_trips_the_record_exactly(event: SiemEvent) -> None:
    doc = one_line(JSONL.encode(event))
    assert AuditRecord.from_dict(doc["record"]) == event.record  # type: ignore[arg-type]
    assert doc["uid"] == event.uid and doc["seq"] == event.seq
    assert doc["line_hash"] == event.line_hash


@given(events())
@settings(max_examples=150, deadline=None)
def test_ocsf_is_a_valid_api_activity(event: SiemEvent) -> None:
    doc = one_line(OCSF.encode(event))
    record = event.record
    assert set(doc) >= OCSF_REQUIRED
    assert doc["class_uid"] == 6003 and doc["category_uid"] == 6
    assert doc["type_uid"] == 600300 + doc["activity_id"]  # type: ignore[operator]
    assert doc["activity_id"] in OCSF_ACTIVITIES
    assert doc["time"] == record.time // 1000
    assert doc["status_id"] in {0, 1, 2, 99}
    assert doc["severity_id"] in {1, 2, 3, 4}
    BaseEvent.model_validate(doc)
    meta = Metadata.model_validate(doc["metadata"])
    assert meta.uid == event.uid and meta.sequence == event.seq
    API.model_validate(doc["api"])
    actor = doc["actor"]
    assert isinstance(actor, dict) and actor["app_name"] == "kzai-guard"
    if record.verdict is not None:
        decision = actor["authorizations"][0]["decision"]
        mapped = {"allow": "allowed", "block": "denied", "route": "routed"}
        assert decision == mapped.get(record.verdict, record.verdict)
    if record.policy is not None:
        policy = Policy.model_validate(actor["authorizations"][0]["policy"])
        assert policy.name == record.policy
    if record.subject is not None:
        assert doc["resources"] == [{"uid": record.subject, "type": "data_subject"}]
    if record.reason is not None:
        assert doc["status_detail"] == record.reason


@pytest.mark.parametrize(
    ("kind", "verdict", "activity", "status"),
    [
        (EventKind.DECISION, "allow", 99, 1),
        (EventKind.DECISION, "block", 99, 2),
        (EventKind.DECISION, "route", 99, 99),
        (EventKind.CONSENT_GRANTED, None, 1, 1),
        (EventKind.CONSENT_WITHDRAWN, None, 4, 1),
        (EventKind.SWITCH_SUSPENDED, None, 3, 1),
        (EventKind.DECISION_WITHHELD, "allow", 99, 2),
    ],
)
def test_ocsf_activity_and_status(
    kind: EventKind, verdict: str | None, activity: int, status: int
) -> None:
    doc = OCSF.document(SiemEvent(sample_record(0, kind=kind, verdict=verdict), 0, "00"))
    assert (doc["activity_id"], doc["type_uid"], doc["status_id"]) == (
        activity,
        600300 + activity,
        status,
    )


@given(events())
@settings(max_examples=150, deadline=None)
def test_ecs_meets_field_expectations(event: SiemEvent) -> None:
    doc = one_line(ECS.encode(event))
    record = event.record
    ev = doc["event"]
    assert isinstance(ev, dict)
    assert ev["kind"] == "event" and ev["category"] == ["api"]
    assert len(ev["type"]) == 1 and ev["type"][0] in ECS_API_TYPES
    assert ev["outcome"] in {"success", "failure", "unknown"}
    assert ev["action"] == record.kind.value
    assert ev["id"] == event.uid and ev["sequence"] == event.seq
    assert isinstance(ev["severity"], int)
    assert ev.get("reason") == record.reason
    if record.latency_us is not None:
        assert ev["duration"] == record.latency_us * 1000
    stamp = doc["@timestamp"]
    assert isinstance(stamp, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    moment = datetime.fromisoformat(stamp)
    assert round(moment.timestamp() * 1_000_000) == record.time
    assert doc["ecs"] == {"version": "8.17.0"}
    rule = doc.get("rule", {})
    assert isinstance(rule, dict)
    assert rule.get("name") == record.policy and rule.get("version") == record.policy_digest
    assert doc.get("trace", {}).get("id") == record.trace_id  # type: ignore[union-attr]
    kzai = doc["kzai"]
    assert isinstance(kzai, dict)
    assert kzai["id"] == record.id and kzai.get("detail") == record.detail


@pytest.mark.parametrize(
    ("verdict", "kind", "expected"),
    [
        ("allow", EventKind.DECISION, ["allowed"]),
        ("block", EventKind.DECISION, ["denied"]),
        ("route", EventKind.DECISION, ["info"]),
        (None, EventKind.CONSENT_GRANTED, ["creation"]),
        (None, EventKind.CONSENT_WITHDRAWN, ["deletion"]),
    ],
)
def test_ecs_event_type(verdict: str | None, kind: EventKind, expected: list[str]) -> None:
    doc = ECS.document(SiemEvent(sample_record(0, kind=kind, verdict=verdict), 0, "00"))
    assert doc["event"]["type"] == expected


@given(events())
@settings(max_examples=150, deadline=None)
def test_hec_event_shape(event: SiemEvent) -> None:
    obj = one_line(HEC.encode(event))
    record = event.record
    assert set(obj) == {"time", "host", "source", "sourcetype", "index", "event", "fields"}
    assert round(obj["time"] * 1_000_000) == record.time  # type: ignore[operator]
    assert obj["host"] == "api-1.example.kz"
    assert obj["index"] == "audit"
    fields = obj["fields"]
    assert isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values())
    assert fields["uid"] == event.uid and fields.get("verdict") == record.verdict
    body = obj["event"]
    assert isinstance(body, dict)
    assert AuditRecord.from_dict(body["record"]) == record


@given(event=small_events(), origin=hostile_origins)
@settings(max_examples=150, deadline=None)
def test_every_json_format_carries_the_origin_exactly(event: SiemEvent, origin: str) -> None:
    settings = SETTINGS.for_log(origin)
    assert one_line(JsonLinesEncoder(settings).encode(event))["origin"] == origin
    ocsf = one_line(OcsfEncoder(settings).encode(event))
    BaseEvent.model_validate(ocsf)
    assert Metadata.model_validate(ocsf["metadata"]).log_provider == origin
    ecs = one_line(EcsEncoder(settings).encode(event))
    assert ecs["kzai"]["origin"] == origin  # type: ignore[index]
    hec = one_line(HecEncoder(settings).encode(event))
    assert hec["fields"]["origin"] == origin  # type: ignore[index]
    assert hec["event"]["origin"] == origin  # type: ignore[index]


def test_without_an_origin_no_json_format_writes_one() -> None:
    event = SiemEvent(sample_record(0), 0, "00")
    assert "origin" not in one_line(JSONL.encode(event))
    assert "log_provider" not in OCSF.document(event)["metadata"]
    assert "origin" not in ECS.document(event)["kzai"]
    hec = HEC.document(event)
    assert "origin" not in hec["fields"] and "origin" not in hec["event"]


def test_hec_batch_is_objects_separated_by_newlines() -> None:
    batch = b"\n".join(HEC.encode(SiemEvent(sample_record(i), i, "00")) for i in range(3))
    decoder_positions = [orjson.loads(line)["event"]["seq"] for line in batch.split(b"\n")]
    assert decoder_positions == [0, 1, 2]


def test_hec_index_left_out_by_default() -> None:
    doc = HecEncoder(EncoderSettings(hostname="h")).document(SiemEvent(sample_record(0), 0, "0"))
    assert "index" not in doc
