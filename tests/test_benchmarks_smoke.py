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

from benchmarks import report

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = set(report.SECTIONS)
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


def test_smoke_run_says_how_much_cpu_other_work_took(results: dict[str, Any]) -> None:
    shares = results["contention"]
    if not Path("/proc/stat").exists():
        assert shares is None
        return
    assert set(shares) == {"others", "steal"}
    assert all(_is_number(v) and v >= 0.0 for v in shares.values()), shares


def test_contention_counts_only_what_the_run_did_not_use() -> None:
    from benchmarks.machine import CpuSnapshot, contention

    before = CpuSnapshot(wall_s=0.0, busy_s=100.0, steal_s=5.0, own_s=10.0)
    # 10 s on 2 cores: 12 s busy, 9 of them this run's own, 1 s stolen
    after = CpuSnapshot(wall_s=10.0, busy_s=112.0, steal_s=6.0, own_s=19.0)
    assert contention(before, after, 2) == {"others": 0.15, "steal": 0.05}
    blind = CpuSnapshot(wall_s=10.0, busy_s=None, steal_s=None, own_s=19.0)
    assert contention(before, blind, 2) is None


def _described(contention: dict[str, float] | None, load: float) -> dict[str, Any]:
    return {
        "mode": "default",
        "machine": {"cores": 2, "loadavg_at_start": [load, 0.0, 0.0]},
        "loadavg_at_end": [1.9, 0.0, 0.0],
        "contention": contention,
    }


def test_docs_call_a_run_busy_from_other_work_not_from_its_own() -> None:
    from benchmarks.docs import _warnings

    # the run's own server and load generator raise the load average at its end
    assert _warnings(_described({"others": 0.02, "steal": 0.01}, 0.3)) == ""
    assert "Busy machine" in _warnings(_described({"others": 0.25, "steal": 0.0}, 0.3))
    assert "Busy machine" in _warnings(_described({"others": 0.0, "steal": 0.08}, 0.3))
    # the load average at the start still counts the minute before the run began
    assert _warnings(_described({"others": 0.0, "steal": 0.0}, 1.5)) == ""
    # without CPU counters the load average at either end is all there is
    assert "Busy machine" in _warnings(_described(None, 0.3))


def test_smoke_run_splits_the_guarded_cost_by_thread(results: dict[str, Any]) -> None:
    figures = {f["name"]: f for f in results["sections"]["hotpath"]["figures"]}
    for framework in ("starlette", "fastapi"):
        for what in ("guarded decision", "guarded decision, audit to NullSink"):
            process = figures[f"in-process {framework}: {what} (otel api)"]
            thread = figures[
                f"in-process {framework}: {what}, the request's thread alone (otel api)"
            ]
            if process["subject"] == UNAVAILABLE:
                continue
            # the serving thread's CPU time is part of the process's, repetition by repetition
            assert thread["subject"]["median"] <= process["subject"]["median"], (thread, process)
            assert thread["subject"]["max"] <= process["subject"]["max"], (thread, process)
            assert thread["subject"]["n"] == process["subject"]["n"]
