"""The "real output" examples of docs/, made by the code they show.

A fenced block right after a line ``<!-- real output: NAME -->`` in a page of docs/ must be
exactly what :data:`PRODUCERS` ``[NAME]`` makes; ``tests/test_doc_examples.py`` checks it.
``python -m tests.doc_examples`` rewrites the blocks after a change to what the code writes.

The SIEM examples encode a real decision record: a guard refuses a solely automated loan
decision for want of consent, and only the record's id, time and latency are fixed, so that the
example does not change from run to run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import kzai_guard as kg
from kzai_guard.audit.keys import write_keypair
from kzai_guard.audit.record import AuditRecord
from kzai_guard.cli.main import main as cli
from kzai_guard.siem import EncoderSettings, SiemEvent, make_encoder
from kzai_guard.testing import memory_guard

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- real output: ([\w-]+) -->\n(```\w*\n)(.*?)^```$", re.M | re.S)

EXAMPLE_POLICY = kg.DecisionPolicy(
    name="loan_approval",
    purpose="credit-scoring",
    domain=kg.Domain.CREDIT,
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.HIGH,
    model=kg.ModelInfo(name="scorer", version="1.4"),
)
EXAMPLE_PSEUDONYM_KEY = b"kzai-guard documentation example"
EXAMPLE_ID = "019b7866-8e7b-7c2a-9d1e-5c0f6b2a4e8d"
EXAMPLE_TIME_US = 1_767_258_000_123_456
EXAMPLE_SEQ = 1042
EXAMPLE_LINE_HASH = "9d1e5c0f6b2a4e8d7c3b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
SETTINGS = EncoderSettings(hostname="api-1.example.kz", origin="credit.example.kz/audit")


def blocked_decision() -> AuditRecord:
    """The record of a loan decision refused because the applicant has not consented."""
    guard, sink = memory_guard(
        [EXAMPLE_POLICY],
        contact="privacy@bank.kz",
        subject=kg.from_path_param("applicant_id"),
        pseudonym_key=EXAMPLE_PSEUDONYM_KEY,
    )

    @guard.decision("loan_approval")
    def decide() -> None:
        """Never runs: the verdict refuses."""

    try:
        with kg.decision_context("KZ-880101300123"):
            decide()
    except kg.DecisionBlocked:
        pass
    finally:
        guard.close()
    [record] = sink.of_kind(kg.EventKind.DECISION)
    return dataclasses.replace(record, id=EXAMPLE_ID, time=EXAMPLE_TIME_US, latency_us=1834)


def _event() -> SiemEvent:
    return SiemEvent(blocked_decision(), EXAMPLE_SEQ, EXAMPLE_LINE_HASH)


def _line(format_name: str) -> Callable[[], str]:
    def produce() -> str:
        return make_encoder(format_name, SETTINGS).encode(_event()).decode()

    return produce


def _pretty(format_name: str) -> Callable[[], str]:
    def produce() -> str:
        document = json.loads(make_encoder(format_name, SETTINGS).encode(_event()))
        return json.dumps(document, indent=2, ensure_ascii=False)

    return produce


def check_example() -> str:
    """``kzai-guard check`` of the complete example file of docs/policies.md, its signing key
    made in place of the one it names."""
    page = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    found = re.search(r"A complete example:\n\n```toml\n(.*?)^```", page, re.S | re.M)
    if found is None:
        raise LookupError("docs/policies.md has no complete example file")
    with tempfile.TemporaryDirectory() as directory:
        _, _, _ = write_keypair(directory, "audit")
        key = json.dumps(str(Path(directory) / "audit.key"))
        path = Path(directory) / "kzai-guard.toml"
        path.write_text(found[1].replace('"/etc/loans/audit.key"', key), encoding="utf-8")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            cli(["check", str(path), "--today", "2026-06-01"])
    return "$ kzai-guard check kzai-guard.toml --today 2026-06-01\n" + printed.getvalue().rstrip()


PRODUCERS: dict[str, Callable[[], str]] = {
    "check": check_example,
    "cef": _line("cef"),
    "leef": _line("leef"),
    "syslog": _line("syslog"),
    "jsonl": _line("jsonl"),
    "hec": _pretty("hec"),
    "ecs": _pretty("ecs"),
    "ocsf": _pretty("ocsf"),
}
"""What makes each named example."""


def examples(text: str) -> list[tuple[str, str]]:
    """The (name, block text) of every marked example in a page."""
    return [(match[1], match[3]) for match in MARKER.finditer(text)]


def pages() -> list[Path]:
    """The pages of docs/ that hold marked examples."""
    return [
        page for page in sorted((ROOT / "docs").rglob("*.md")) if MARKER.search(page.read_text())
    ]


def rewrite(text: str) -> str:
    """``text`` with every marked example made again."""
    return MARKER.sub(
        lambda match: f"<!-- real output: {match[1]} -->\n{match[2]}{PRODUCERS[match[1]]()}\n```",
        text,
    )


if __name__ == "__main__":
    for page in pages():
        page.write_text(rewrite(page.read_text()))
        print(f"rewrote {page.relative_to(ROOT)}", file=sys.stderr)
