"""The results: a JSON document, a table for the terminal, and the Markdown page.

Every figure appears with its baseline, the difference, the ratio, its spread and, where the
project set a target, PASS or MISS. A figure that could not be measured is listed as
UNAVAILABLE, which counts as a miss: nothing is left out of the table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from benchmarks.measure import UNAVAILABLE

SCHEMA = 1
SECTIONS = (
    "floor",
    "hotpath",
    "breakdown",
    "instructions",
    "served",
    "audit",
    "fleet",
    "fleet-pg",
    "growth",
    "consent",
    "siem",
)
TITLES = {
    "floor": "Physical floor",
    "hotpath": "Hot path, in-process ASGI",
    "breakdown": "Hot path, part by part",
    "instructions": "Hot path, instructions per request",
    "served": "Hot path, uvicorn on 127.0.0.1",
    "audit": "Audit log",
    "fleet": "Audit log, several writer processes",
    "fleet-pg": "Audit log in PostgreSQL, several writer processes",
    "growth": "Growth",
    "consent": "Consent lookups",
    "siem": "SIEM encoding",
}


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")


def summary(results: dict[str, Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for section in results["sections"].values():
        for figure in section["figures"]:
            counts[figure["status"]] += 1
        if section["status"] == "error":
            counts["ERROR"] += 1
    return {key: counts.get(key, 0) for key in ("PASS", "MISS", "UNAVAILABLE", "INFO", "ERROR")}


def fmt(value: Any, unit: str = "") -> str:
    """A number in at most four significant figures, thousands separated."""
    if value is None:
        return "-"
    if value == UNAVAILABLE:
        return "n/a"
    if isinstance(value, str):
        return value
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def _spread(sample: Any) -> str:
    if not isinstance(sample, dict):
        return "-"
    if sample["n"] < 4:
        return f"{fmt(sample['min'])}-{fmt(sample['max'])} (n={sample['n']})"
    return f"IQR {fmt(sample['q1'])}-{fmt(sample['q3'])} (n={sample['n']})"


def _ratio(value: Any) -> str:
    if value is None or value == UNAVAILABLE:
        return fmt(value)
    return f"{value:.2f}x"


def _target(target: dict[str, Any] | None) -> str:
    return target["text"] if target else ""


def _median(sample: Any) -> Any:
    return sample["median"] if isinstance(sample, dict) else sample


def rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per figure: section, figure, baseline, subject, delta, ratio, spread, target,
    status, note."""
    out: list[list[str]] = []
    for name in SECTIONS:
        section = results["sections"].get(name)
        if section is None:
            continue
        if section["status"] == "error":
            out.append(
                [
                    TITLES[name],
                    "section failed",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "ERROR",
                    section.get("error", ""),
                ]
            )
        for f in section["figures"]:
            unit = f["unit"]
            baseline = (
                f"{f['baseline_label']}: {fmt(_median(f['baseline']), unit)}"
                if f["baseline"]
                else "-"
            )
            out.append(
                [
                    TITLES[name],
                    f["name"],
                    baseline,
                    f"{f['subject_label']}: {fmt(_median(f['subject']), unit)}"
                    if f["subject"] != UNAVAILABLE
                    else "n/a",
                    fmt(f["delta"]),
                    _ratio(f["ratio"]),
                    _spread(f["subject"]),
                    _target(f["target"]),
                    f["status"],
                    f.get("note", ""),
                ]
            )
    return out


HEADER = [
    "Section",
    "Figure",
    "Baseline (median)",
    "Subject (median)",
    "Delta",
    "Ratio",
    "Subject spread",
    "Target",
    "Status",
    "Note",
]


def terminal_table(results: dict[str, Any]) -> str:
    table = rows(results)
    shown = [row[:9] for row in table]
    widths = [
        max(len(HEADER[i]), *(len(r[i]) for r in shown)) if shown else len(HEADER[i])
        for i in range(9)
    ]
    widths[1] = min(widths[1], 60)

    def line(cells: list[str]) -> str:
        return "  ".join(c[: widths[i]].ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(HEADER[:9]), line(["-" * w for w in widths])]
    out += [line(r) for r in shown]
    notes = [f"  [{r[1]}] {r[9]}" for r in table if r[9]]
    counts = summary(results)
    out.append("")
    out.append("Summary: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if notes:
        out.append("Notes:")
        out += notes
    return "\n".join(out)


def markdown_table(results: dict[str, Any]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    head = [
        "Figure",
        "Baseline (median)",
        "Subject (median)",
        "Delta",
        "Ratio",
        "Spread",
        "Target",
        "Status",
        "Note",
    ]
    parts: list[str] = []
    current = None
    for row in rows(results):
        if row[0] != current:
            current = row[0]
            parts += [
                "",
                f"### {current}",
                "",
                "| " + " | ".join(head) + " |",
                "|" + "---|" * len(head),
            ]
        status = f"**{row[8]}**" if row[8] in ("MISS", "UNAVAILABLE", "ERROR") else row[8]
        parts.append("| " + " | ".join(cell(c) for c in [*row[1:8], status, row[9]]) + " |")
    return "\n".join(parts)
