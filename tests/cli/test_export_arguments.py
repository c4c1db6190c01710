"""The ``--since``/``--until`` and ``--leef-delimiter`` values of ``kzai-guard export``.

Any text is a time or an ``argparse.ArgumentTypeError`` (a usage error, exit status 2), and any
delimiter is used or refused with exit status 1; nothing else escapes to the user.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kzai_guard.cli.export import _delimiter, parse_time
from kzai_guard.cli.main import main
from tests.siem.conftest import sample_record, write_log

FIXTURES = [HealthCheck.function_scoped_fixture]
SPECIAL = ["Infinity", "-Infinity", "inf", "nan", "NaN", "1e400", "-1e400", "1e308", ""]
TIMES = (
    st.text()
    | st.sampled_from(SPECIAL)
    | st.floats().map(str)
    | st.integers().map(str)
    | st.datetimes(timezones=st.timezones()).map(datetime.isoformat)
    | st.datetimes().map(lambda d: d.isoformat() + "Z")
)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("export") / "audit"
    write_log(directory, [sample_record(i) for i in range(3)])
    return directory


@settings(max_examples=400)
@given(text=TIMES)
@example(text="Infinity")
@example(text="nan")
@example(text="1e400")
@example(text="-1e400")
def test_any_time_text_is_microseconds_or_an_argument_type_error(text: str) -> None:
    try:
        value = parse_time(text)
    except argparse.ArgumentTypeError:
        return
    assert isinstance(value, int)


@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)))
def test_an_rfc3339_time_and_its_unix_seconds_parse_to_the_same_microseconds(
    moment: datetime,
) -> None:
    aware = moment.replace(tzinfo=UTC)
    micros = parse_time(aware.isoformat().replace("+00:00", "Z"))
    assert micros == round(aware.timestamp() * 1_000_000)
    assert parse_time(str(micros // 1_000_000)) == micros // 1_000_000 * 1_000_000


@settings(max_examples=100, suppress_health_check=FIXTURES)
@given(option=st.sampled_from(["--since", "--until"]), text=TIMES)
@example(option="--since", text="Infinity")
def test_export_with_any_time_runs_or_is_a_usage_error(
    log_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, text: str
) -> None:
    args = ["export", str(log_dir), "--unverified", "--format", "jsonl"]
    args += ["--out", str(tmp_path / "out")]
    try:
        code = main([*args, f"{option}={text}"])
    except SystemExit as exit_:
        assert exit_.code == 2
        assert "kzai-guard export: error: argument" in capsys.readouterr().err
        return
    assert code == 0


@given(text=st.text())
def test_any_delimiter_text_is_a_delimiter(text: str) -> None:
    assert _delimiter(text) == ("\t" if text.lower() in ("tab", "x09", "0x09", "\\t") else text)


@settings(max_examples=100, suppress_health_check=FIXTURES)
@given(text=st.text(max_size=4) | st.sampled_from(["tab", "TAB", "\\t", "0x09", "^", "|", ""]))
def test_export_with_any_leef_delimiter_runs_or_says_why_not(
    log_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    out = tmp_path / "out.leef"
    args = ["export", str(log_dir), "--unverified", "--format", "leef", "--out", str(out)]
    args += ["--hostname", "h"]
    code = main([*args, f"--leef-delimiter={text}"])
    if code == 1:
        assert "leef_delimiter" in capsys.readouterr().err
    else:
        assert code == 0 and len(out.read_bytes().splitlines()) == 3
