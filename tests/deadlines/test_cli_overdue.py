"""``kzai-guard reviews overdue``: the tickets due soon or overdue, listed or recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

import kzai_guard as kg
from kzai_guard.cli.main import main
from tests.deadlines.receiver import SECRET, Receiver, free_port
from tests.samples import GATEWAY_SUBJECT, LOAN

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
FRIDAY = "2026-03-06T09:00:00+00:00"
"""Monday's tickets are due by the end of Thursday 5 March, Tuesday's by Friday 6 March."""


def store_with_tickets(path: Path) -> tuple[str, kg.ReviewTicket, kg.ReviewTicket]:
    url = f"sqlite:///{path}"
    now = [MONDAY]
    guard = kg.Guard(
        [LOAN],
        store=url,
        audit=kg.NullSink(),
        pseudonym_key=b"kzai-guard-test-pseudonym-key-32b",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
        clock=lambda: now[0],
        deadline_check_seconds=None,
    )
    late = guard.reviews.open(
        decision_id="d-1", policy="loan_approval", subject="A-1", reason="objection"
    )
    now[0] = TUESDAY
    soon = guard.reviews.open(
        decision_id="d-2", policy="loan_approval", subject="A-2", reason="objection"
    )
    guard.close()
    return url, late, soon


def test_overdue_lists_due_soon_and_overdue_tickets_as_json_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, late, soon = store_with_tickets(tmp_path / "kzg.db")

    code = main(["reviews", "overdue", "--store", url, "--at", FRIDAY, "--json"])

    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert [(e["review_id"], e["state"], e["deadline"], e["decision_id"]) for e in lines] == [
        (late.id, "overdue", "2026-03-05T19:00:00+00:00", "d-1"),
        (soon.id, "due_soon", "2026-03-06T19:00:00+00:00", "d-2"),
    ]
    assert "A-1" not in str(lines)


def test_overdue_exits_0_when_nothing_is_past_its_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = store_with_tickets(tmp_path / "kzg.db")

    code = main(["reviews", "overdue", "--store", url, "--at", "2026-03-04T09:00:00+00:00"])

    out = capsys.readouterr().out.splitlines()
    assert (code, [line.split()[0] for line in out]) == (0, ["due_soon"])


def test_overdue_with_the_service_file_records_and_notifies_each_finding_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, late, soon = store_with_tickets(tmp_path / "kzg.db")
    port = free_port()
    config = tmp_path / "kzai-guard.toml"
    config.write_text(
        f"""
[guard]
store = "{url}"
audit = "{tmp_path / "audit"}"
subject_header = "X-Subject-Id"
contact = "credit@example.kz"
deadline_webhook_url = "http://127.0.0.1:{port}/hooks"
deadline_webhook_secret = "{SECRET}"

[[policy]]
name = "loan_approval"
purpose = "credit-scoring"
domain = "credit"
significance = "legal-effect"
autonomy = "high"
risk = "high"
model = {{ name = "scorer", version = "1" }}
""",
        encoding="utf-8",
    )
    receiver = Receiver(port)
    try:
        first = main(["reviews", "overdue", "--config", str(config), "--at", FRIDAY, "--json"])
        first_out = capsys.readouterr().out
        again = main(["reviews", "overdue", "--config", str(config), "--at", FRIDAY, "--json"])
        again_out = capsys.readouterr().out
    finally:
        receiver.close()

    assert (first, again) == (1, 1)
    assert [
        (e["review_id"], e["newly_recorded"]) for e in map(orjson.loads, first_out.splitlines())
    ] == [
        (late.id, True),
        (soon.id, True),
    ]
    assert [e["newly_recorded"] for e in map(orjson.loads, again_out.splitlines())] == [
        False,
        False,
    ]
    bodies = [kg.verify_webhook(SECRET, h, b) for h, b in receiver.received]
    assert sorted((b["review_id"], b["type"]) for b in bodies) == sorted(
        [(late.id, "review.overdue"), (soon.id, "review.due_soon")]
    )
