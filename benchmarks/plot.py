"""The growth curves as a self-contained SVG: no plotting library needed.

Two panels share a logarithmic x axis (records in the log): append and verify throughput on
the left, time per inclusion proof on the right (the public bundle, and the bare audit path).
Each point is a median; a bar spans min-max.
"""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 900, 380
PANEL_W, PANEL_H = 360, 260
MARGIN_L, MARGIN_T = 80, 60
GAP = 90
PAD = 24
COLOURS = {"append": "#1f77b4", "verify": "#d62728", "prove": "#2ca02c", "path": "#9467bd"}


def _series(results: dict[str, Any]) -> dict[str, list[tuple[int, dict[str, float]]]]:
    out: dict[str, list[tuple[int, dict[str, float]]]] = {}
    growth = results["sections"].get("growth", {"figures": []})
    for figure in growth["figures"]:
        extra = figure.get("extra") or {}
        if "op" not in extra or not isinstance(figure["subject"], dict):
            continue
        out.setdefault(extra["op"], []).append((extra["size"], figure["subject"]))
    for points in out.values():
        points.sort()
    return out


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _label(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _panel(
    x0: int,
    title: str,
    unit: str,
    series: dict[str, list[tuple[int, dict[str, float]]]],
    sizes: list[int],
) -> list[str]:
    parts: list[str] = []
    y0 = MARGIN_T
    lo, hi = math.log10(min(sizes)), math.log10(max(sizes))
    span = hi - lo or 1.0
    top = _nice_max(max((p["max"] for pts in series.values() for _, p in pts), default=1.0))

    def px(size: int) -> float:
        return x0 + PAD + (math.log10(size) - lo) / span * (PANEL_W - 2 * PAD)

    def py(value: float) -> float:
        return y0 + PANEL_H - value / top * PANEL_H

    parts.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{y0 - 22}" text-anchor="middle" '
        f'font-weight="bold">{escape(title)}</text>'
    )
    parts.append(
        f'<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>'
    )
    for i in range(5):
        value = top * i / 4
        y = py(value)
        parts.append(
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">{_label(value)}</text>'
        )
    for size in sizes:
        x = px(size)
        parts.append(
            f'<text x="{x:.1f}" y="{y0 + PANEL_H + 16}" text-anchor="middle" '
            f'font-size="11">{_label(size)}</text>'
        )
    parts.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{y0 + PANEL_H + 36}" text-anchor="middle" '
        f'font-size="12">records in the log</text>'
    )
    parts.append(
        f'<text x="{x0 - 58}" y="{y0 + PANEL_H / 2}" text-anchor="middle" '
        f'font-size="12" transform="rotate(-90 {x0 - 58} {y0 + PANEL_H / 2})">'
        f"{escape(unit)}</text>"
    )
    for row, (op, points) in enumerate(series.items()):
        colour = COLOURS.get(op, "#333")
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{px(s):.1f},{py(p['median']):.1f}"
            for i, (s, p) in enumerate(points)
        )
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for size, p in points:
            x = px(size)
            parts.append(
                f'<line x1="{x:.1f}" y1="{py(p["min"]):.1f}" x2="{x:.1f}" '
                f'y2="{py(p["max"]):.1f}" stroke="{colour}"/>'
            )
            parts.append(
                f'<circle cx="{x:.1f}" cy="{py(p["median"]):.1f}" r="3.5" fill="{colour}"/>'
            )
        ly = y0 + 14 + row * 16
        parts.append(f'<rect x="{x0 + 8}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x0 + 24}" y="{ly}" font-size="12">{escape(op)}</text>')
    return parts


def growth_svg(results: dict[str, Any]) -> str | None:
    """The SVG text, or None when the run measured no growth points."""
    series = _series(results)
    if not series:
        return None
    sizes = sorted({s for pts in series.values() for s, _ in pts})
    rates = {op: pts for op, pts in series.items() if op in ("append", "verify")}
    proofs = {op: pts for op, pts in series.items() if op in ("prove", "path")}
    title = f"kzai_guard signed audit log: growth ({results['mode']} run, {results['started_utc']})"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    if rates:
        parts += _panel(MARGIN_L, "append and verify throughput", "records/s", rates, sizes)
    if proofs:
        proof_title = "inclusion proof: bundle, and bare path"
        parts += _panel(MARGIN_L + PANEL_W + GAP, proof_title, "us per proof", proofs, sizes)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
