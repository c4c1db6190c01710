"""The report's charts as inline SVG, drawn with matplotlib's SVG backend (the ``report`` extra).

Text stays text (``svg.fonttype = none``), so the browser draws Kazakh and Russian labels in
its own fonts; the XML prologue, document type and metadata are dropped, so the markup embeds
in HTML and names no external resource.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kzai_guard.errors import ConfigurationError

__all__ = ["disparity_chart", "verdicts_chart"]

_COLOURS = {"allow": "#2e7d32", "route": "#f9a825", "block": "#c62828"}
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ConfigurationError(
            "kzai-guard report draws its charts with matplotlib: pip install 'kzai-guard[report]'"
        ) from None
    matplotlib.use("svg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "kzai-guard"
    import matplotlib.pyplot as plt

    return plt


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    _pyplot().close(figure)
    text = buffer.getvalue()
    text = _METADATA.sub("", text[text.index("<svg") :])
    return text


def verdicts_chart(by_day: Mapping[tuple[str, str], int], title: str) -> str:
    """Decisions per UTC day, stacked by verdict."""
    plt = _pyplot()
    days = sorted({day for day, _ in by_day})
    figure, axes = plt.subplots(figsize=(8, 3))
    bottom = [0] * len(days)
    for verdict, colour in _COLOURS.items():
        heights = [by_day.get((day, verdict), 0) for day in days]
        axes.bar(days, heights, bottom=bottom, color=colour, label=verdict)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")
    axes.tick_params(axis="x", labelrotation=45, labelsize="small")
    figure.tight_layout()
    return _svg(figure)


def disparity_chart(
    labels: Sequence[str],
    rates: Sequence[float],
    intervals: Sequence[tuple[float, float]],
    flagged: Sequence[bool],
    title: str,
) -> str:
    """Selection rate per group with its 95 % interval; flagged groups in red."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 0.5 + 0.4 * len(labels)))
    lower = [r - low for r, (low, _) in zip(rates, intervals, strict=True)]
    upper = [high - r for r, (_, high) in zip(rates, intervals, strict=True)]
    colours = ["#c62828" if f else "#1565c0" for f in flagged]
    positions = list(range(len(labels)))
    axes.barh(positions, rates, xerr=[lower, upper], color=colours, capsize=3)
    axes.set_yticks(positions, labels=list(labels), fontsize="small")
    axes.set_xlim(0, 1)
    axes.invert_yaxis()
    axes.set_title(title)
    figure.tight_layout()
    return _svg(figure)
