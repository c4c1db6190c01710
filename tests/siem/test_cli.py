"""``kzai-guard export`` and ``kzai-guard ship --once`` from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pycef
import pytest

from kzai_guard.cli.export import parse_time
from kzai_guard.cli.main import main
from kzai_guard.siem import CursorFile

from .conftest import key_options, sample_record, write_log

BASE = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z; sample_record(i) is i ms later


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(20)])
    return directory


def export(directory: Path) -> list[str]:
    return ["export", str(directory), *key_options(directory)]


@pytest.mark.parametrize("fmt", ["cef", "leef", "syslog", "ocsf", "ecs", "hec", "jsonl"])
def test_export_writes_one_line_per_record(log_dir: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    assert main([*export(log_dir), "--format", fmt, "--out", str(out), "--hostname", "h"]) == 0
    assert len(out.read_bytes().splitlines()) == 20


def test_export_since_until_select_a_time_window(log_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    since = "2026-01-01T00:00:00.005Z"
    until = str((BASE + 9_000) / 1_000_000)
    args = [*export(log_dir), "--format", "jsonl", "--since", since, "--until", until]
    assert main([*args, "--out", str(out)]) == 0
    seqs = [orjson.loads(line)["seq"] for line in out.read_bytes().splitlines()]
    assert seqs == [5, 6, 7, 8]


def test_export_to_stdout(log_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main([*export(log_dir), "--format", "cef", "--hostname", "h"]) == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert [pycef.parse(line)["seq"] for line in lines] == [str(i) for i in range(20)]


def test_parse_time_accepts_rfc3339_and_unix_seconds() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == BASE
    assert parse_time("2026-01-01T05:00:00+05:00") == BASE
    assert parse_time("1767225600") == BASE
    with pytest.raises(Exception, match="time zone"):
        parse_time("2026-01-01T00:00:00")


def test_ship_once_resumes_from_the_cursor(log_dir: Path, tmp_path: Path) -> None:
    out, cursor = tmp_path / "out.jsonl", tmp_path / "cursor"
    args = ["ship", str(log_dir), "--to", f"file:{out}", "--format", "jsonl"]
    args += [*key_options(log_dir)]
    args += ["--cursor", str(cursor), "--once", "--quiet"]
    assert main(args) == 0
    write_log(log_dir, [sample_record(i) for i in range(20, 25)])
    assert main(args) == 0
    seqs = [orjson.loads(line)["seq"] for line in out.read_bytes().splitlines()]
    assert seqs == list(range(25))
    saved = CursorFile(cursor).load()
    assert saved is not None and saved.seq == 24


def test_ship_rejects_a_bad_enterprise_number(log_dir: Path, tmp_path: Path) -> None:
    args = ["ship", str(log_dir), "--to", "-", "--format", "syslog", "--enterprise-number", "0"]
    args.append("--unverified")
    assert main([*args, "--cursor", str(tmp_path / "c")]) == 1
