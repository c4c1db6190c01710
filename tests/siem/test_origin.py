"""The log's origin in every event: validation, binding to the log read, real exports and ships.

The de-duplication key of a fleet's events is ``(origin, seq, line_hash)``; every test here reads
it back with the format's independent parser and compares it with the log itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pycef
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from pydantic import ValidationError

from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.segments import read_origin
from kzai_guard.cli.main import main
from kzai_guard.errors import ConfigurationError
from kzai_guard.siem import (
    EncoderSettings,
    OtelDestination,
    Shipper,
    SiemEvent,
    make_encoder,
    open_destination,
)

from .conftest import HOSTILE_ORIGIN, SETTINGS, demo_key, key_options, sample_record, write_log
from .test_cef import unescape as cef_unescape
from .test_leef import parse_leef
from .test_syslog import parse_strict

Key = tuple[str | None, int, str]


def _cef(line: str) -> Key:
    parsed = pycef.parse(line)
    assert isinstance(parsed, dict)
    origin = parsed.get("kzaiOrigin")
    return (
        None if origin is None else cef_unescape(origin),
        int(parsed["seq"]),
        parsed["kzaiLineHash"],
    )


def _leef(line: str) -> Key:
    _, attrs = parse_leef(line)
    return attrs.get("kzaiOrigin"), int(attrs["kzaiSeq"]), attrs["kzaiLineHash"]


def _syslog(line: str) -> Key:
    params = parse_strict(line)["sd"]["kzai@32473"]
    return params.get("origin"), int(params["seq"]), params["line_hash"]


def _ocsf(line: str) -> Key:
    doc = orjson.loads(line)
    meta = doc["metadata"]
    return meta.get("log_provider"), meta["sequence"], doc["unmapped"]["line_hash"]


def _ecs(line: str) -> Key:
    doc = orjson.loads(line)
    return doc["kzai"].get("origin"), doc["event"]["sequence"], doc["event"]["hash"]


def _hec(line: str) -> Key:
    obj = orjson.loads(line)
    assert obj["fields"].get("origin") == obj["event"].get("origin")
    return _jsonl(orjson.dumps(obj["event"]).decode())


def _jsonl(line: str) -> Key:
    doc = orjson.loads(line)
    return doc.get("origin"), doc["seq"], doc["line_hash"]


KEY_OF: dict[str, Callable[[str], Key]] = {
    "cef": _cef,
    "leef": _leef,
    "syslog": _syslog,
    "ocsf": _ocsf,
    "ecs": _ecs,
    "hec": _hec,
    "jsonl": _jsonl,
}


def log_keys(directory: Path) -> list[Key]:
    origin = read_origin(directory)
    return [(origin, e.seq, e.line_hash) for e in read_verified(directory)]


@pytest.fixture(scope="module")
def hostile_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real signed log of 12 records whose origin is full of delimiters and non-ASCII."""
    directory = tmp_path_factory.mktemp("origin") / "audit"
    write_log(directory, [sample_record(i) for i in range(12)], origin=HOSTILE_ORIGIN)
    return directory


# --- validation and binding ----------------------------------------------------------------


@given(st.text(max_size=12))
@settings(max_examples=200, deadline=None)
def test_an_origin_is_accepted_exactly_when_it_is_one_printable_line(value: str) -> None:
    try:
        EncoderSettings(hostname="h", origin=value)
    except ValidationError:
        assert not value.strip() or not value.isprintable()
    else:
        assert value.strip() and value.isprintable()


@pytest.mark.parametrize(
    "bad", ["", "   ", "a\nb", "a\rb", "a\tb", "a\x00b", "a\x85b", "a\u2028b", "a\u202eb"]
)
def test_origins_a_format_would_have_to_alter_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="origin"):
        EncoderSettings(hostname="h", origin=bad)
    with pytest.raises(ConfigurationError, match="printable"):
        SETTINGS.for_log(bad)
    with pytest.raises(ConfigurationError, match="printable"):
        OtelDestination(origin=bad)


def test_the_log_origin_replaces_none_and_must_match_one_given() -> None:
    assert SETTINGS.origin is None
    assert SETTINGS.for_log("a.kz/audit").origin == "a.kz/audit"
    given_one = SETTINGS.for_log("a.kz/audit")
    assert given_one.for_log("a.kz/audit") == given_one
    with pytest.raises(ConfigurationError, match=r"'b\.kz/audit'.*leave the origin unset"):
        given_one.for_log("b.kz/audit")
    with pytest.raises(ConfigurationError, match="has no origin"):
        given_one.for_log(None)
    assert SETTINGS.for_log(None).origin is None


@pytest.mark.parametrize("fmt", sorted(KEY_OF))
def test_every_encoder_rebinds_to_the_log_and_refuses_another(fmt: str) -> None:
    encoder = make_encoder(fmt, SETTINGS)
    bound = encoder.for_log("a.kz/audit")
    assert bound is not encoder and type(bound) is type(encoder)
    assert bound.for_log("a.kz/audit") is bound
    key = KEY_OF[fmt](bound.encode(SiemEvent(sample_record(0), 5, "ab")).decode())
    assert key == ("a.kz/audit", 5, "ab")
    with pytest.raises(ConfigurationError, match=r"a\.kz/audit"):
        bound.for_log("b.kz/audit")


def test_otel_destination_rebinds_to_the_log_and_refuses_another() -> None:
    destination = OtelDestination()
    bound = destination.for_log("a.kz/audit")
    assert bound.origin == "a.kz/audit" and bound.for_log("a.kz/audit") is bound
    with pytest.raises(ConfigurationError, match=r"a\.kz/audit"):
        bound.for_log("b.kz/audit")


# --- real logs ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(KEY_OF))
def test_export_of_a_real_log_carries_its_origin_in_every_event(
    hostile_log: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"out.{fmt}"
    args = ["export", str(hostile_log), *key_options(hostile_log), "--format", fmt]
    assert main([*args, "--out", str(out)]) == 0
    keys = [KEY_OF[fmt](line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert keys == log_keys(hostile_log)
    assert {origin for origin, _, _ in keys} == {HOSTILE_ORIGIN}


def test_export_refuses_a_leef_delimiter_the_origin_contains(
    hostile_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", str(hostile_log), "--unverified", "--format", "leef"]
    args += ["--leef-delimiter", "^"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 1
    assert "choose another leef_delimiter (--leef-delimiter)" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["syslog", "hec"])
def test_ship_carries_the_origin_of_the_log_it_reads(
    hostile_log: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "out"
    args = ["ship", str(hostile_log), "--to", f"file:{out}", "--format", fmt]
    args += [*key_options(hostile_log)]
    assert main([*args, "--cursor", str(tmp_path / "cursor"), "--once", "--quiet"]) == 0
    keys = [KEY_OF[fmt](line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert keys == log_keys(hostile_log)


def test_two_logs_shipped_to_one_file_are_told_apart_by_origin(tmp_path: Path) -> None:
    out = tmp_path / "siem.jsonl"
    for name in ("a", "b"):
        directory = tmp_path / name
        write_log(directory, [sample_record(i) for i in range(5)], origin=f"{name}.kz/audit")
        destination = open_destination(f"file:{out}", make_encoder("jsonl", SETTINGS))
        Shipper(
            directory,
            destination,
            cursor=tmp_path / f"{name}.cursor",
            public_keys=[demo_key(directory)],
            follow=False,
        ).run()
    keys = [_jsonl(line) for line in out.read_text().splitlines()]
    assert len(keys) == 10
    assert {(origin, seq) for origin, seq, _ in keys} == {
        (f"{name}.kz/audit", seq) for name in "ab" for seq in range(5)
    }
    assert keys == log_keys(tmp_path / "a") + log_keys(tmp_path / "b")


def test_shipper_refuses_a_destination_made_for_another_origin(hostile_log: Path) -> None:
    encoder = make_encoder("cef", SETTINGS.for_log("other.kz/audit"))
    destination = open_destination("-", encoder)
    with pytest.raises(ConfigurationError, match=r"other\.kz/audit"):
        Shipper(
            hostile_log,
            destination,
            cursor=hostile_log.parent / "cursor",
            public_keys=[demo_key(hostile_log)],
        )


def test_shipper_made_before_its_log_takes_the_origin_when_it_starts(tmp_path: Path) -> None:
    directory, out = tmp_path / "audit", tmp_path / "out.cef"
    destination = open_destination(f"file:{out}", make_encoder("cef", SETTINGS))
    shipper = Shipper(
        directory, destination, cursor=tmp_path / "cursor", unverified=True, follow=False
    )
    assert shipper.origin is None
    write_log(directory, [sample_record(i) for i in range(3)], origin="late.kz/audit")
    shipper.run()
    assert shipper.origin == "late.kz/audit"
    assert [_cef(line) for line in out.read_text().splitlines()] == log_keys(directory)


def test_shipper_gives_the_origin_to_opentelemetry(hostile_log: Path, tmp_path: Path) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    shipper = Shipper(
        hostile_log,
        OtelDestination(provider),
        cursor=tmp_path / "cursor",
        public_keys=[demo_key(hostile_log)],
        follow=False,
    )
    shipper.run()
    provider.shutdown()
    keys = []
    for item in exporter.get_finished_logs():
        attributes = dict(item.log_record.attributes or {})
        keys.append(
            (attributes["kzai.origin"], attributes["kzai.seq"], attributes["kzai.line_hash"])
        )
    assert keys == log_keys(hostile_log)
