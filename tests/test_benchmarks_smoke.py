"""The benchmark suite's smoke mode runs end to end and reports every section.

No timing is asserted: only that the run succeeded and that every value is a number or the
explicit "unavailable" marker.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {"floor", "hotpath", "instructions", "served", "audit", "growth", "consent", "siem"}
STATS = ("median", "q1", "q3", "min", "max", "n")
STATUSES = {"PASS", "MISS", "INFO", "UNAVAILABLE"}
UNAVAILABLE = "unavailable"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("bench") / "smoke.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return data


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_smoke_run_reports_every_section_without_error(results: dict[str, Any]) -> None:
    assert results["mode"] == "smoke"
    assert set(results["sections"]) == SECTIONS
    assert {name: s["status"] for name, s in results["sections"].items()} == dict.fromkeys(
        SECTIONS, "ok"
    )
    assert all(s["figures"] for s in results["sections"].values())


def test_smoke_run_values_are_numbers_or_marked_unavailable(results: dict[str, Any]) -> None:
    for section in results["sections"].values():
        for figure in section["figures"]:
            assert figure["status"] in STATUSES, figure
            subject = figure["subject"]
            if subject == UNAVAILABLE:
                assert figure["status"] == "UNAVAILABLE", figure
                assert figure["delta"] == UNAVAILABLE and figure["ratio"] == UNAVAILABLE
                continue
            assert all(_is_number(subject[k]) for k in STATS), figure
            baseline = figure["baseline"]
            if baseline is None:
                assert figure["delta"] is None and figure["ratio"] is None, figure
            else:
                assert all(_is_number(baseline[k]) for k in STATS), figure
                assert _is_number(figure["delta"]), figure
                ratio_undefined = figure["ratio"] is None and baseline["median"] == 0
                assert _is_number(figure["ratio"]) or ratio_undefined, figure


def test_smoke_run_describes_the_machine(results: dict[str, Any]) -> None:
    machine = results["machine"]
    assert machine["cpu"] and machine["python"] and machine["cores"] >= 1
    assert results["summary"]["ERROR"] == 0
