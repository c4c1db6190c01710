"""``kzai-guard ship --country``: where the destination keeps the data (KZ-PD 12(2), 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kzai_guard.cli.main import main

from .conftest import key_options, sample_record, write_log


def ship(tmp_path: Path, *extra: str) -> int:
    directory = tmp_path / "audit"
    if not directory.exists():
        write_log(directory, [sample_record(i) for i in range(3)])
    args = ["ship", str(directory), "--to", f"file:{tmp_path / 'out.jsonl'}", "--format", "jsonl"]
    args += [*key_options(directory)]
    return main([*args, "--cursor", str(tmp_path / "cursor"), "--once", "--quiet", *extra])


@pytest.mark.parametrize(
    ("extra", "finding"),
    [
        ((), "(KZ-PD 12(2)): destination 'file:"),
        (("--country", "DE"), "(KZ-PD 16): destination 'file:"),
    ],
)
def test_a_transfer_out_of_kazakhstan_or_an_undeclared_one_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], finding: str
) -> None:
    assert ship(tmp_path, *extra) == 0
    assert f"kzai-guard ship: finding {finding}" in capsys.readouterr().err


def test_a_destination_in_kazakhstan_is_not_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ship(tmp_path, "--country", "KZ") == 0
    assert "finding" not in capsys.readouterr().err


def test_a_bad_country_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ship(tmp_path, "--country", "Germany") == 1
    assert "not an ISO 3166 alpha-2 code" in capsys.readouterr().err
