"""``kzai-guard report``: its numbers equal counts made independently from ``kzai-guard export
--format jsonl``; the HTML needs nothing from the network and renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import kzai_guard as kg
from kzai_guard.cli.main import main
from tests.samples import EXPLANATION, GATEWAY_SUBJECT

pytest.importorskip("matplotlib")

CONFIG = """
[guard]
profile = "kz"
contact = "fairness@bank.kz"

[[policy]]
name = "loan_approval"
purpose = "credit-scoring"
significance = "legal-effect"
autonomy = "high"
risk = "high"
risk_reviewed_on = "2024-01-15"
model = { name = "scorer", version = "1.4" }
inputs = ["income", "tenure"]
monitoring = { grounds = ["sex", "age-band"], min_sample = 20 }

[[destination]]
name = "splunk-frankfurt"
country = "DE"

[[destination]]
name = "archive"
"""


class Clock:
    """A clock the test moves (review deadlines)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def groups(subject: str) -> dict[str, str]:
    sex, age, _ = subject.split("_")
    return {"sex": sex, "age-band": age}


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An audit log and store with decisions, objections, reviews and a planted disparity."""
    root = tmp_path_factory.mktemp("report")
    config = root / "kzai-guard.toml"
    config.write_text(CONFIG)
    clock = Clock()
    guard = kg.Guard.from_file(
        config,
        store=f"sqlite:///{root / 'store.db'}",
        audit=root / "audit",
        subject=GATEWAY_SUBJECT,
        groups=groups,
        clock=clock,
        pseudonym_key=b"r" * 32,
    )
    try:

        @guard.decision("loan_approval")
        def approve(favourable: bool, explained: bool = True) -> None:
            if explained:
                kg.explain(EXPLANATION)
            kg.mark_outcome(favourable=favourable)

        for i in range(120):
            sex = "f" if i % 2 else "m"
            age = "18-34" if i % 3 else "35-64"
            subject = f"{sex}_{age}_{i}"
            guard.consents.grant(subject, "credit-scoring", "v1")
            with kg.decision_context(subject):
                approve(i % 10 < (3 if sex == "f" else 7))
        # Withheld: no explanation.
        guard.consents.grant("m_18-34_900", "credit-scoring", "v1")
        with kg.decision_context("m_18-34_900"), pytest.raises(kg.ExplanationMissing):
            approve(True, explained=False)
        # Blocked: no consent.
        for i in range(3):
            with kg.decision_context(f"f_18-34_{500 + i}"), pytest.raises(kg.DecisionBlocked):
                approve(True)
        # Routed after objections; one review met, one missed, one pending.
        tickets = []
        for i in range(3):
            subject = f"f_35-64_{700 + i}"
            guard.objections.record(subject)
            with kg.decision_context(subject), pytest.raises(kg.HumanReviewRequired) as routed:
                approve(True)
            tickets.append(routed.value.ticket)
        guard.objections.withdraw("f_35-64_702")
        officer = kg.Reviewer(id="officer-1")
        guard.reviews.complete(tickets[0].id, reviewer=officer, outcome="approved")
        clock.now += timedelta(days=30)
        guard.reviews.complete(tickets[1].id, reviewer=officer, outcome="approved")
        clock.now -= timedelta(days=30)
        guard.disparity.flush()
    finally:
        guard.close()
    yield root


def run_report(trail: Path, lang: str) -> tuple[int, str, dict[str, object]]:
    out = trail / f"report-{lang}.html"
    code = main(
        [
            "report",
            str(trail / "audit"),
            "--origin",
            (trail / "audit" / "origin").read_text().strip(),
            "--config",
            str(trail / "kzai-guard.toml"),
            "--store",
            f"sqlite:///{trail / 'store.db'}",
            "--lang",
            lang,
            "--out",
            str(out),
        ]
    )
    html = out.read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S)
    assert match is not None
    return code, html, json.loads(match.group(1))


def exported(trail: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    key = str(next((trail / "audit" / "keys").glob("*.pub")))
    origin = (trail / "audit" / "origin").read_text().strip()  # the log this test made
    args = ["export", str(trail / "audit"), "--format", "jsonl", "--public-key", key]
    assert main([*args, "--origin", origin]) == 0
    return [json.loads(line)["record"] for line in capsys.readouterr().out.splitlines()]


def test_the_numbers_equal_counts_from_the_export(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = exported(trail, capsys)
    code, html, figures = run_report(trail, "en")
    assert code == 0
    kinds = Counter(r["kind"] for r in records)
    decisions = [r for r in records if r["kind"] == "decision"]
    assert figures["records"] == len(records)
    assert figures["decisions"] == len(decisions) == 120 + 3 + 3
    assert figures["by_verdict"] == dict(Counter(r["verdict"] for r in decisions))
    assert figures["by_reason"] == sorted(
        [*key, n]
        for key, n in Counter((r["policy"], r["verdict"], r["reason"]) for r in decisions).items()
    )
    assert figures["explanations"] == sum("explanation_digest" in r for r in decisions)
    assert figures["withheld"] == kinds["decision.withheld"] == 1
    assert figures["objections"] == kinds["objection.recorded"] == 3
    assert figures["objections_withdrawn"] == kinds["objection.withdrawn"] == 1
    reviews = figures["reviews"]
    assert isinstance(reviews, dict)
    assert reviews["opened"] == kinds["review.opened"] == 3
    assert reviews["completed"] == kinds["review.completed"] == 2
    assert (reviews["met"], reviews["missed"], reviews["pending"]) == (1, 1, 1)
    assert figures["disparity_alerts"] == kinds["disparity.detected"] == 1
    # The same numbers are what the page shows.
    assert f'data-count="decisions">{figures["decisions"]}<' in html
    assert f'data-count="reviews_missed">{reviews["missed"]}<' in html
    assert f'data-count="trail_records">{len(records)}<' in html
    # The disparity table counts each group's decisions as the store does.
    assert 'data-count="loan_approval/sex/f">60<' in html
    assert 'data-count="loan_approval/sex/m">60<' in html


def test_the_findings_name_their_articles(trail: Path) -> None:
    _, html, _ = run_report(trail, "en")
    for article, words in [
        ("KZ-AI 18", "is over 365 days old"),
        ("KZ-AI 17(2)", "high autonomy"),
        ("KZ-AI 6", "sex=f is selected at"),
        ("KZ-PD 19-1", "1 human reviews missed their deadline"),
        ("KZ-PD 16", "to DE, outside Kazakhstan"),
        ("KZ-PD 12(2)", "&#x27;archive&#x27; declares no country"),
    ]:
        assert re.search(f"<td>{re.escape(article)}</td><td>[^<]*{re.escape(words)}", html), article


@pytest.mark.parametrize(
    ("lang", "title"),
    [("kk", "ЖИ шешімдерінің сәйкестік есебі"), ("ru", "Отчёт о соответствии решений ИИ")],  # noqa: RUF001
)
def test_the_report_speaks_kazakh_and_russian(trail: Path, lang: str, title: str) -> None:
    _, html, _ = run_report(trail, lang)
    assert f'<html lang="{lang}">' in html and f"<h1>{title}</h1>" in html


URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


def test_the_report_renders_in_chromium_without_the_network(trail: Path) -> None:
    _, html, _ = run_report(trail, "en")
    # Namespace names are identifiers, never fetched; nothing else may name a URL.
    stripped = re.sub(r'xmlns(?::\w+)?="[^"]*"', "", html)
    assert URL.findall(stripped) == []
    assert "<svg" in html and "<img" not in html and "<link" not in html
    chromium = shutil.which("chromium")
    assert chromium is not None, "install Debian's chromium (scripts/setup-env does)"
    page = trail / "report-en.html"
    shot = trail / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",  # a closed port: any request would fail
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1100,2600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_the_report_prints_as_pdf(trail: Path) -> None:
    assert shutil.which("chromium") is not None, "install Debian's chromium (scripts/setup-env)"
    pdf = trail / "report.pdf"
    args = ["report", str(trail / "audit"), "--config", str(trail / "kzai-guard.toml")]
    args += ["--origin", (trail / "audit" / "origin").read_text().strip()]
    args += ["--store", f"sqlite:///{trail / 'store.db'}", "--out", str(trail / "r.html")]
    assert main([*args, "--pdf", str(pdf)]) == 0
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and b"/Type /Page" in data and len(data) > 10_000
