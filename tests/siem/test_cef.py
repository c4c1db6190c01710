"""CEF: every line parsed by pycef, compared field by field, hostile values included."""

from __future__ import annotations

import re

import pycef
import pytest
from hypothesis import given, settings

from kzai_guard.audit.record import EventKind
from kzai_guard.siem import EncoderSettings, SiemEvent
from kzai_guard.siem.cef import CefEncoder, escape_header

from .conftest import SETTINGS, events, hostile_origins, sample_record, sanitised, small_events

ENCODER = CefEncoder(SETTINGS)

# record field -> the key pycef reports (custom labels already applied by pycef)
KEYS = {
    "verdict": "act",
    "reason": "reason",
    "detail": "msg",
    "subject": "duser",
    "reviewer": "suser",
    "policy": "policy",
    "purpose": "purpose",
    "basis": "basis",
    "model": "model",
    "trace_id": "traceId",
    "review_id": "reviewId",
    "profile": "profile",
    "significance": "significance",
    "mode": "kzaiMode",
    "autonomy": "kzaiAutonomy",
    "policy_digest": "kzaiPolicyDigest",
    "explanation_digest": "kzaiExplanationDigest",
    "data_basis_digest": "kzaiDataBasisDigest",
    "id": "kzaiRecordId",
}


def unescape(value: str) -> str:
    """Undo CEF extension escaping (pycef returns values as written)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), value)


def expected(value: str) -> str:
    return sanitised(value, keep="\n\r")


def check(event: SiemEvent, encoder: CefEncoder = ENCODER) -> None:
    line = encoder.render(event)
    assert encoder.encode(event) == line.encode()
    assert len(line.splitlines()) == 1
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)
    parsed = pycef.parse(line)
    assert isinstance(parsed, dict)
    record = event.record
    assert parsed["CEFVersion"] == "0"
    assert parsed["DeviceVendor"] == "kzai"
    assert parsed["DeviceProduct"] == "kzai-guard"
    assert parsed["DeviceVersion"] == "1.0"
    assert parsed["DeviceEventClassID"] == record.kind.value
    assert parsed["Severity"] in {"3", "5", "7", "9"}
    assert parsed["rt"] == str(record.time // 1000)
    assert unescape(parsed["externalId"]) == expected(event.uid)
    assert parsed["cat"] == record.kind.value
    assert parsed["outcome"] in {"success", "failure", "unknown"}
    assert parsed["dvchost"] == "api-1.example.kz"
    assert parsed["seq"] == str(event.seq)
    assert parsed["kzaiLineHash"] == event.line_hash
    origin = encoder.settings.origin
    if origin is None:
        assert "kzaiOrigin" not in parsed
    else:
        assert unescape(parsed["kzaiOrigin"]) == origin
    if record.latency_us is None:
        assert "latencyUs" not in parsed
    else:
        assert parsed["latencyUs"] == str(record.latency_us)
    for field, key in KEYS.items():
        value = getattr(record, field)
        if value:
            assert unescape(parsed[key]) == expected(value), field
        else:
            assert key not in parsed, field
    known = set(KEYS.values()) | {
        "CEFVersion",
        "DeviceVendor",
        "DeviceProduct",
        "DeviceVersion",
        "DeviceEventClassID",
        "Name",
        "DeviceName",
        "Severity",
        "DeviceSeverity",
        "rt",
        "externalId",
        "cat",
        "outcome",
        "dvchost",
        "seq",
        "kzaiLineHash",
        "kzaiOrigin",
        "latencyUs",
    }
    assert set(parsed) <= known, "a field was forged"


@given(event=small_events(), origin=hostile_origins)
@settings(max_examples=200, deadline=None)
def test_hostile_origin_round_trips_through_pycef(event: SiemEvent, origin: str) -> None:
    check(event, CefEncoder(SETTINGS.for_log(origin)))


def test_origin_is_written_before_the_line_hash() -> None:
    encoder = CefEncoder(SETTINGS.for_log("a=b\\c|d"))
    line = encoder.render(SiemEvent(sample_record(0), 3, "ab"))
    assert line.endswith(" kzaiOrigin=a\\=b\\\\c|d kzaiLineHash=ab cn1Label=seq cn1=3")


@given(events())
@settings(max_examples=300, deadline=None)
def test_hostile_values_round_trip_through_pycef(event: SiemEvent) -> None:
    check(event)


def test_plain_decision_is_parsed_field_by_field() -> None:
    event = SiemEvent(sample_record(1), 1, "ab" * 32)
    check(event)
    parsed = pycef.parse(ENCODER.render(event))
    assert parsed["Name"] == "AI decision blocked"
    assert parsed["Severity"] == "7"
    assert parsed["act"] == "block"
    assert parsed["outcome"] == "failure"


@pytest.mark.parametrize(
    ("verdict", "severity"), [("allow", "3"), ("route", "5"), ("block", "7"), ("odd", "5")]
)
def test_severity_follows_the_verdict(verdict: str, severity: str) -> None:
    line = ENCODER.render(SiemEvent(sample_record(0, verdict=verdict), 0, "00"))
    assert line.split("|")[6] == severity


def test_withheld_decision_is_high_severity() -> None:
    rec = sample_record(0, kind=EventKind.DECISION_WITHHELD)
    assert ENCODER.render(SiemEvent(rec, 0, "00")).split("|")[6] == "9"


def test_header_escapes_pipe_and_backslash() -> None:
    encoder = CefEncoder(EncoderSettings(hostname="h", vendor="a|b\\c", product_version="1"))
    line = encoder.render(SiemEvent(sample_record(0), 0, "00"))
    assert line.startswith("CEF:0|a\\|b\\\\c|kzai-guard|1|decision|")
    fields = re.split(r"(?<!\\)\|", line.replace("\\\\", "\x00"))
    assert [f.replace("\x00", "\\\\") for f in fields[:3]] == ["CEF:0", "a\\|b\\\\c", "kzai-guard"]


def test_header_escape_function() -> None:
    assert escape_header("x|y\\z\n") == "x\\|y\\\\z\ufffd"


def test_line_ends_with_the_sequence_number() -> None:
    rec = sample_record(0, detail="trailing space ")
    assert ENCODER.render(SiemEvent(rec, 9, "00")).endswith(" cn1Label=seq cn1=9")
