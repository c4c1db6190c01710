"""RFC 5424: parsed by syslog-rfc5424-parser and by a strict parser written from the ABNF.

The published parser reads an escaped backslash at the end of a PARAM-VALUE (``"a\\\\"``) as an
escaped quote, which RFC 5424 section 6.3.3 does not allow; messages with such a value are
checked by the strict parser only.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from hypothesis import given, settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # lark-parser 0.6 imports sre_parse
    from syslog_rfc5424_parser import SyslogMessage

from kzai_guard.siem import EncoderSettings, SiemEvent
from kzai_guard.siem.syslog import SyslogEncoder, escape_param_value

from .conftest import (
    SETTINGS,
    STRING_FIELDS,
    events,
    hostile_origins,
    sample_record,
    sanitised,
    small_events,
)

ENCODER = SyslogEncoder(SETTINGS)
_HEADER = re.compile(
    r"<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) "
    r"([!-~]{1,255}|-) ([!-~]{1,48}|-) ([!-~]{1,128}|-) ([!-~]{1,32}|-) "
)
_SD_NAME = re.compile(r"[!-~]{1,32}")


def parse_strict(message: str) -> dict[str, Any]:
    """Parse one RFC 5424 message; raise ``ValueError`` on any deviation from the ABNF."""
    m = _HEADER.match(message)
    if not m:
        raise ValueError("bad header")
    pos = m.end()
    sd: dict[str, dict[str, str]] = {}
    if message.startswith("-", pos):
        pos += 1
    while message.startswith("[", pos):
        pos += 1
        end = pos
        while end < len(message) and message[end] not in ' ]="':
            end += 1
        sd_id = message[pos:end]
        if not _SD_NAME.fullmatch(sd_id) or sd_id in sd:
            raise ValueError(f"bad SD-ID {sd_id!r}")
        params: dict[str, str] = {}
        pos = end
        while message.startswith(" ", pos):
            eq = message.index("=", pos)
            name = message[pos + 1 : eq]
            if not _SD_NAME.fullmatch(name) or any(c in name for c in ' ]"'):
                raise ValueError(f"bad PARAM-NAME {name!r}")
            if message[eq + 1] != '"':
                raise ValueError("PARAM-VALUE must be quoted")
            pos = eq + 2
            value = []
            while True:
                c = message[pos]
                if c == "\\" and message[pos + 1] in '"\\]':
                    value.append(message[pos + 1])
                    pos += 2
                elif c == '"':
                    pos += 1
                    break
                elif c == "]":
                    raise ValueError("unescaped ] in PARAM-VALUE")
                else:
                    value.append(c)
                    pos += 1
            params[name] = "".join(value)
        if not message.startswith("]", pos):
            raise ValueError("SD-ELEMENT not closed")
        pos += 1
        sd[sd_id] = params
    if pos == len(message):
        msg = None
    elif message[pos] == " ":
        msg = message[pos + 1 :]
    else:
        raise ValueError("junk after structured data")
    return {
        "pri": int(m[1]),
        "timestamp": m[2],
        "hostname": m[3],
        "appname": m[4],
        "procid": m[5],
        "msgid": m[6],
        "sd": sd,
        "msg": msg,
    }


def expected_params(event: SiemEvent) -> dict[str, str]:
    record = event.record
    out = {
        "uid": sanitised(event.uid),
        "seq": str(event.seq),
        "line_hash": event.line_hash,
        "time": str(record.time),
        "kind": record.kind.value,
    }
    for name in STRING_FIELDS:
        value = getattr(record, name)
        if value is not None:
            out[name] = sanitised(value)
    if record.latency_us is not None:
        out["latency_us"] = str(record.latency_us)
    return out


@given(events())
@settings(max_examples=300, deadline=None)
def test_hostile_values_round_trip(event: SiemEvent) -> None:
    message = ENCODER.render(event)
    assert len(message.splitlines()) == 1
    parsed = parse_strict(message)
    params = parsed["sd"]["kzai@32473"]
    assert set(parsed["sd"]) == {"kzai@32473"}
    outcome = params.pop("outcome")
    assert outcome in {"success", "failure", "unknown"}
    assert params == expected_params(event)
    assert parsed["hostname"] == "api-1.example.kz"
    assert parsed["appname"] == "kzai-guard"
    assert parsed["procid"] == "42"
    assert parsed["msgid"] == event.record.kind.value
    assert parsed["pri"] // 8 == 13
    assert parsed["pri"] % 8 in {3, 4, 5, 6}
    assert parsed["msg"].isascii() and parsed["msg"].isprintable()

    raw_values = [v for v in expected_params(event).values()]
    if any(v.endswith("\\") for v in raw_values):
        return
    published = SyslogMessage.parse(message)
    assert published.hostname == "api-1.example.kz"
    assert published.appname == "kzai-guard"
    assert published.msgid == event.record.kind.value
    assert published.timestamp == parsed["timestamp"]
    assert int(published.severity) == parsed["pri"] % 8
    assert int(published.facility) == 13
    assert published.msg == parsed["msg"]
    sd = published.sd["kzai@32473"]
    assert {k: unescape(v) for k, v in sd.items() if k != "outcome"} == expected_params(event)


@given(event=small_events(), origin=hostile_origins)
@settings(max_examples=200, deadline=None)
def test_hostile_origin_round_trips(event: SiemEvent, origin: str) -> None:
    message = SyslogEncoder(SETTINGS.for_log(origin)).render(event)
    assert len(message.splitlines()) == 1
    params = parse_strict(message)["sd"]["kzai@32473"]
    assert params.pop("origin") == origin
    params.pop("outcome")
    assert params == expected_params(event)
    if origin.endswith("\\") or any(v.endswith("\\") for v in params.values()):
        return
    published = SyslogMessage.parse(message).sd["kzai@32473"]
    assert unescape(published["origin"]) == origin
    assert published["seq"] == str(event.seq) and published["line_hash"] == event.line_hash


def test_origin_follows_the_line_hash() -> None:
    encoder = SyslogEncoder(SETTINGS.for_log('a"b]c\\'))
    message = encoder.render(SiemEvent(sample_record(0), 4, "ab"))
    assert ' seq="4" line_hash="ab" origin="a\\"b\\]c\\\\" outcome="success"' in message


def unescape(value: str) -> str:
    """Undo PARAM-VALUE escaping (the published parser returns values as written)."""
    return re.sub(r'\\(["\\\]])', r"\1", value)


def test_example_message_is_exact() -> None:
    rec = sample_record(0, time=1_700_000_000_000_001, reason='say "hi" ]')
    message = ENCODER.render(SiemEvent(rec, 5, "ab"))
    assert message.startswith("<110>1 2023-11-14T22:13:20.000001Z api-1.example.kz kzai-guard 42 ")
    assert 'reason="say \\"hi\\" \\]"' in message
    assert message.endswith("] AI decision allowed")


def test_escape_param_value() -> None:
    assert escape_param_value('"\\]\n') == '\\"\\\\\\]\ufffd'


def test_enterprise_number_is_configurable() -> None:
    encoder = SyslogEncoder(EncoderSettings(hostname="h", enterprise_number=54321))
    assert "[kzai@54321 uid=" in encoder.render(SiemEvent(sample_record(0), 0, "00"))


def test_invalid_header_fields_are_refused_at_configuration() -> None:
    for bad in ({"hostname": "has space"}, {"app_name": "x" * 49}, {"procid": "é"}):
        try:
            EncoderSettings(**bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")
