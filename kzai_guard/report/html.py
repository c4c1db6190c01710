"""The report as one self-contained HTML document: inline CSS, inline SVG, no external request."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from kzai_guard.audit.verify import VerifyReport
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.transfers import Destination
from kzai_guard.core.vocabulary import Language
from kzai_guard.report.charts import disparity_chart, verdicts_chart
from kzai_guard.report.figures import Figures
from kzai_guard.report.texts import text
from kzai_guard.report.witnessing import WitnessStatus

__all__ = ["ReportInput", "render"]

_Text = Callable[[str], str]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:2rem;
color:#1b1b1b;max-width:60rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}th{background:#f3f3f3}
td.n{text-align:right}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}
.flag{background:#fdecea}svg{max-width:100%;height:auto}
"""


@dataclass(frozen=True, slots=True)
class ReportInput:
    """What the report shows."""

    language: Language
    since: datetime
    until: datetime
    generated: datetime
    policies: Sequence[DecisionPolicy]
    figures: Figures
    verification: VerifyReport
    findings: Sequence[tuple[str, str]]
    destinations: Sequence[Destination]
    witnesses: WitnessStatus | None = None
    """The witnesses' cosignatures, when any were kept."""
    witnessed: bool = False
    """True when the log was set up with witnesses (or keys for them were given): then their
    absence is shown too."""


def render(data: ReportInput) -> str:
    """The HTML document."""
    lang = data.language

    def t(key: str) -> str:
        return escape(text(key, lang))

    parts = [
        f'<!DOCTYPE html><html lang="{lang.value}"><head><meta charset="utf-8">',
        f"<title>{t('title')}</title><style>{_CSS}</style></head><body>",
        f"<h1>{t('title')}</h1>",
        f"<p>{t('period')}: {_moment(data.since)} \u2013 {_moment(data.until)} UTC. "
        f"{t('generated')}: {_moment(data.generated)} UTC</p>",
        _inventory(data, t),
        _decisions(data, t),
        _people(data, t),
        _disparity(data, t),
        _integrity(data, t),
        _transfers(data, t),
        _findings(data, t),
        '<script type="application/json" id="figures">',
        escape(json.dumps(data.figures.as_dict(), sort_keys=True), quote=False),
        "</script></body></html>",
    ]
    return "\n".join(parts)


def _moment(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], ids: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table{ids}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object, key: str | None = None) -> str:
    if isinstance(value, int):
        data = f' data-count="{escape(key)}"' if key else ""
        return f'<td class="n"{data}>{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def _basis(policy: DecisionPolicy) -> str:
    if policy.statutory_basis is not None:
        return policy.statutory_basis.law
    if policy.purpose is not None:
        return f"consent: {policy.purpose}"
    if policy.contract_necessity:
        return "contract"
    return f"fallback: {policy.fallback.value}"


def _inventory(data: ReportInput, t: _Text) -> str:
    rows = [
        [
            _cell(p.name),
            _cell(p.significance.value),
            _cell(p.autonomy.value),
            _cell(p.risk.value),
            _cell(p.model.label if p.model else "—"),
            _cell(_basis(p)),
            _cell(p.mode.value),
            _cell(p.risk_reviewed_on.isoformat() if p.risk_reviewed_on else "—"),
        ]
        for p in data.policies
    ]
    keys = ("policy", "significance", "autonomy", "risk", "model", "basis", "mode", "risk_review")
    return f"<h2>{t('inventory')}</h2>" + _table([t(k) for k in keys], rows)


def _decisions(data: ReportInput, t: _Text) -> str:
    figures = data.figures
    rows = [
        [_cell(policy), _cell(verdict), _cell(reason), _cell(n, f"{policy}/{verdict}/{reason}")]
        for (policy, verdict, reason), n in sorted(figures.by_reason.items())
    ]
    chart = verdicts_chart(figures.by_day, text("decisions_by_day", data.language))
    return (
        f'<h2>{t("decisions")}: <span data-count="decisions">{figures.decisions}</span></h2>'
        + chart
        + _table([t("policy"), t("verdict"), t("reason"), t("count")], rows)
    )


def _people(data: ReportInput, t: _Text) -> str:
    f = data.figures
    items = [
        ("objections", f.objections),
        ("objections_withdrawn", f.objections_withdrawn),
        ("reviews_opened", f.reviews.opened),
        ("reviews_met", f.reviews.met),
        ("reviews_missed", f.reviews.missed),
        ("reviews_pending", f.reviews.pending),
        ("explanations", f.explanations),
        ("withheld", f.withheld),
    ]
    rows = [[_cell(text(key, data.language)), _cell(n, key)] for key, n in items]
    return f"<h2>{t('people')}</h2>" + _table(["", t("count")], rows)


def _disparity(data: ReportInput, t: _Text) -> str:
    rows_in = data.figures.disparities
    out = [f"<h2>{t('disparity')}</h2>"]
    if not rows_in:
        return out[0] + f"<p>{t('no_monitoring')}</p>"
    out.append(
        f'<p>{t("alerts")}: <span data-count="disparity_alerts">'
        f"{data.figures.disparity_alerts}</span>. {t('routings')}: "
        f'<span data-count="routings">{data.figures.routings}</span></p>'
    )
    labels = [f"{r.policy} · {r.ground}={r.disparity.group}" for r in rows_in]
    out.append(
        disparity_chart(
            labels,
            [r.disparity.rate for r in rows_in],
            [r.disparity.interval for r in rows_in],
            [r.disparity.flagged for r in rows_in],
            text("rate", data.language),
        )
    )
    rows = []
    for r in rows_in:
        d = r.disparity
        low, high = d.interval
        cells = [
            _cell(r.policy),
            _cell(r.ground),
            _cell(d.group),
            _cell(d.decisions, f"{r.policy}/{r.ground}/{d.group}"),
            _cell(f"{d.rate:.3f} ({low:.3f}\u2013{high:.3f})"),
            _cell(f"{d.ratio:.2f}"),
            _cell(f"{d.p_value:.2g}"),
            _cell("⚠" if d.flagged else ""),
        ]
        rows.append(cells)
    header = [t("policy"), t("ground"), t("group"), t("decisions"), t("rate"), t("ratio"), "p"]
    out.append(_table([*header, t("flagged")], rows))
    return "".join(out)


def _integrity(data: ReportInput, t: _Text) -> str:
    v = data.verification
    if v.problem is None:
        status = f'<p class="ok">{t("verified")}</p>'
    else:
        status = (
            f'<p class="bad">{t("broken")}: seq {v.problem.seq}: '
            f"{escape(v.problem.kind)}: {escape(v.problem.message)}</p>"
        )
    rows = [
        [_cell(text("records", data.language)), _cell(v.records, "trail_records")],
        [_cell(text("checkpoints", data.language)), _cell(v.checkpoints, "checkpoints")],
    ]
    return (
        f"<h2>{t('integrity')}</h2>" + status + _table(["", t("count")], rows) + _witnesses(data, t)
    )


def _witnesses(data: ReportInput, t: _Text) -> str:
    status = data.witnesses
    if status is None:
        return f"<h3>{t('witnesses')}</h3><p>{t('no_witnesses')}</p>" if data.witnessed else ""
    rows = [
        [
            _cell(w.name),
            _cell(w.size, f"witness/{w.name}/size"),
            _cell(_moment(w.cosigned_at)),
            _cell(w.behind, f"witness/{w.name}/behind"),
            _cell("✓" if w.checked else text("not_checked", data.language)),
        ]
        for w in status.witnesses
    ]
    header = [t("witness"), t("cosigned_size"), t("cosigned_at"), t("behind"), t("checked")]
    out = f"<h3>{t('witnesses')}</h3>" + _table(header, rows)
    if status.quorum is not None:
        size = status.quorum_size
        shown = (
            f'<span data-count="witness_quorum_size">{size}</span>'
            if size is not None
            else f'<span class="bad">{t("no_quorum")}</span>'
        )
        out += f"<p>{t('quorum')} ({status.quorum}): {shown}</p>"
    return out


def _transfers(data: ReportInput, t: _Text) -> str:
    if not data.destinations:
        return ""
    rows = [[_cell(d.name), _cell(d.country or "?")] for d in data.destinations]
    return f"<h2>{t('transfers')}</h2>" + _table([t("destination"), t("country")], rows)


def _findings(data: ReportInput, t: _Text) -> str:
    if not data.findings:
        return f"<h2>{t('findings')}</h2><p>{t('no_findings')}</p>"
    rows = [[_cell(article), _cell(finding)] for article, finding in data.findings]
    return f"<h2>{t('findings')}</h2>" + _table([t("article"), t("findings")], rows)
