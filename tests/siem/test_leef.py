"""LEEF 2.0: parsed the way the LEEF guide defines the format, hostile values included.

LEEF has no published Python parser; :func:`parse_leef` follows the IBM LEEF guide strictly:
a single line, six ``|``-separated header fields (the sixth the delimiter, a character or its
hex code ``xHH``/``0xHH``), then ``key=value`` attributes separated by the delimiter, each split
at its first ``=``. Duplicate keys are an error.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from kzai_guard.errors import ConfigurationError
from kzai_guard.siem import EncoderSettings, SiemEvent
from kzai_guard.siem.leef import LEEF_TIME_FORMAT, LeefEncoder

from .conftest import SETTINGS, events, hostile_origins, sample_record, sanitised, small_events

KEYS = {
    "reviewer": "usrName",
    "policy": "policy",
    "verdict": "kzaiVerdict",
    "reason": "kzaiReason",
    "detail": "kzaiDetail",
    "subject": "kzaiSubject",
    "policy_digest": "kzaiPolicyDigest",
    "purpose": "kzaiPurpose",
    "profile": "kzaiProfile",
    "mode": "kzaiMode",
    "significance": "kzaiSignificance",
    "autonomy": "kzaiAutonomy",
    "basis": "kzaiBasis",
    "review_id": "kzaiReviewId",
    "explanation_digest": "kzaiExplanationDigest",
    "data_basis_digest": "kzaiDataBasisDigest",
    "model": "kzaiModel",
    "trace_id": "kzaiTraceId",
    "id": "kzaiRecordId",
}


def parse_leef(line: str) -> tuple[list[str], dict[str, str]]:
    """Header fields and attributes of one LEEF 2.0 event; raises on anything malformed."""
    if any(c in line for c in "\r\n\x85\u2028\u2029"):
        raise ValueError("a LEEF event is one line")
    header = line.split("|", 6)
    if len(header) != 7 or header[0] != "LEEF:2.0":
        raise ValueError("bad LEEF 2.0 header")
    code = header[5]
    if code.lower().startswith(("0x", "x")) and len(code) > 1:
        delimiter = chr(int(code.lower().lstrip("0").lstrip("x"), 16))
    elif len(code) == 1:
        delimiter = code
    else:
        raise ValueError(f"bad delimiter {code!r}")
    attributes: dict[str, str] = {}
    for pair in header[6].split(delimiter):
        key, sep, value = pair.partition("=")
        if not sep or not key or key in attributes:
            raise ValueError(f"bad attribute {pair!r}")
        attributes[key] = value
    return header[:6], attributes


@pytest.mark.parametrize("delimiter", ["\t", "^"])
@given(event=events())
@settings(max_examples=200, deadline=None)
def test_hostile_values_follow_the_sanitising_rule(delimiter: str, event: SiemEvent) -> None:
    encoder = LeefEncoder(SETTINGS.model_copy(update={"leef_delimiter": delimiter}))
    line = encoder.render(event)
    header, attrs = parse_leef(line)
    record = event.record
    assert header == ["LEEF:2.0", "kzai", "kzai-guard", "1.0", record.kind.value, header[5]]
    assert attrs["cat"] == record.kind.value
    assert attrs["devTimeFormat"] == LEEF_TIME_FORMAT
    assert attrs["sev"] in {"3", "5", "7", "9"}
    assert attrs["kzaiTimeUs"] == str(record.time)
    assert attrs["kzaiUid"] == sanitised(event.uid, extra=delimiter)
    assert attrs["kzaiSeq"] == str(event.seq)
    assert attrs["kzaiLineHash"] == event.line_hash
    for field, key in KEYS.items():
        value = getattr(record, field)
        if value:
            assert attrs[key] == sanitised(value, extra=delimiter), field
        else:
            assert key not in attrs, field
    assert set(attrs) <= set(KEYS.values()) | {
        "devTime",
        "devTimeFormat",
        "cat",
        "sev",
        "kzaiOutcome",
        "kzaiUid",
        "kzaiTimeUs",
        "kzaiLatencyUs",
        "kzaiLineHash",
        "kzaiSeq",
    }


@pytest.mark.parametrize("delimiter", ["\t", "^", "/"])
@given(event=small_events(), origin=hostile_origins)
@settings(max_examples=150, deadline=None)
def test_hostile_origin_round_trips_or_is_refused(
    delimiter: str, event: SiemEvent, origin: str
) -> None:
    settings = SETTINGS.model_copy(update={"leef_delimiter": delimiter}).for_log(origin)
    if delimiter in origin:
        with pytest.raises(ConfigurationError, match="leef_delimiter"):
            LeefEncoder(settings)
        return
    _, attrs = parse_leef(LeefEncoder(settings).render(event))
    assert attrs["kzaiOrigin"] == origin
    assert attrs["kzaiLineHash"] == event.line_hash
    assert attrs["kzaiSeq"] == str(event.seq)


def test_without_an_origin_there_is_no_origin_attribute() -> None:
    _, attrs = parse_leef(LeefEncoder(SETTINGS).render(SiemEvent(sample_record(0), 0, "00")))
    assert "kzaiOrigin" not in attrs


def test_tab_delimiter_is_written_as_hex() -> None:
    line = LeefEncoder(SETTINGS).render(SiemEvent(sample_record(0), 0, "00"))
    assert line.startswith("LEEF:2.0|kzai|kzai-guard|1.0|decision|x09|devTime=")


def test_dev_time_has_milliseconds_and_utc() -> None:
    rec = sample_record(0, time=1_700_000_000_123_456)
    _, attrs = parse_leef(LeefEncoder(SETTINGS).render(SiemEvent(rec, 0, "00")))
    assert attrs["devTime"] == "2023-11-14T22:13:20.123Z"


def test_pipe_in_header_field_is_replaced() -> None:
    encoder = LeefEncoder(EncoderSettings(hostname="h", vendor="a|b", product_version="1"))
    header, _ = parse_leef(encoder.render(SiemEvent(sample_record(0), 0, "00")))
    assert header[1] == "a\ufffdb"


def test_bad_delimiter_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="leef_delimiter"):
        EncoderSettings(hostname="h", leef_delimiter="=")
