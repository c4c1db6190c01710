"""``guard.erase_subject`` erases: afterwards no file the library wrote holds the person's raw
identifier or any personal text of theirs, their explanation is served no more, and no two of
their remaining log lines share a value that would tie them together.

The person consents (with a withdrawal restriction naming them), gets an explained decision,
objects, gets a routed decision whose ticket a reviewer completes with a note about them; a
second person does the same and keeps everything. Every file under the service's directory
(store, its WAL, the audit log, the subject keys, an export made after the erasure) is then
read as bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import kzai_guard as kg
from kzai_guard.audit.reader import read_verified
from kzai_guard.audit.segments import list_segments
from kzai_guard.audit.shredding import subject_ref
from kzai_guard.cli.main import main as cli
from kzai_guard.stores.base import ErasedData
from tests.oversight.service import CARD
from tests.samples import GATEWAY_SUBJECT, LOAN

ERASED = "KZ-880101300123"
KEPT = "KZ-900202400456"


def personal_texts(person: str) -> list[str]:
    """What the service writes about ``person`` besides their identifier."""
    return [
        f"salary of {person}: 987654 tenge",
        f"Алия {person[-4:]} Ерасова",
        f"loan 77-{person[-4:]} of the applicant",
        f"{person[-4:]} called on Tuesday about her case",
        f"works at Tengri Logistics since 20{person[-2:]}",
    ]


LOAN_WITH_BASIS = kg.DecisionPolicy(
    **{
        **LOAN.model_dump(),
        "data_basis": (
            kg.BasisInput(name="employment", source="request"),
            kg.BasisInput(name="household", source="request", redaction="third_party"),
        ),
    }
)
"""The loan policy, declaring the data its decisions rest on."""


def explanation(person: str) -> kg.Explanation:
    salary, name, *_ = personal_texts(person)
    return kg.Explanation(
        summary={kg.Language.EN: "Approved"},
        factors=(
            kg.Factor(name="income", direction=kg.Direction.FAVOURABLE, weight=0.6, value=salary),
        ),
        ai_role="A model computed the score.",
        consequences=f"The loan is granted to {name}.",
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[kg.Guard, Path]]:
    guard = kg.Guard(
        [LOAN_WITH_BASIS],
        store=f"sqlite:///{tmp_path / 'kzai-guard.db'}",
        audit=tmp_path / "kzai-audit",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    yield guard, tmp_path
    guard.close()


def live_through_the_law(guard: kg.Guard, person: str) -> str:
    """Consent, an explained decision resting on data, an objection, a routed and reviewed
    decision."""
    _, name, ground, note, employment = personal_texts(person)

    @guard.decision("loan_approval")
    def decide() -> None:
        kg.explain(explanation(person))
        kg.data_basis({"employment": employment, "household": name})

    guard.consents.grant(
        person,
        "credit-scoring",
        "v1",
        withdrawal_restriction=kg.WithdrawalRestriction(ground, datetime(2099, 1, 1, tzinfo=UTC)),
    )
    with kg.decision_context(person) as context:
        decide()
        decision_id = context.decision_id
    guard.objections.record(person)
    with pytest.raises(kg.HumanReviewRequired) as routed, kg.decision_context(person):
        decide()
    guard.reviews.complete(
        routed.value.ticket.id,
        reviewer=kg.Reviewer(id="officer-7"),
        outcome=kg.ReviewOutcome.APPROVED,
        note=note,
    )
    assert decision_id is not None
    return decision_id


def files_holding(directory: Path, texts: list[str]) -> dict[str, list[str]]:
    """For each file under ``directory``, the ``texts`` its bytes contain."""
    found: dict[str, list[str]] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            hits = [text for text in texts if text.encode() in data]
            if hits:
                found[str(path.relative_to(directory))] = hits
    return found


def export(directory: Path) -> Path:
    public = sorted((directory / "kzai-audit" / "keys").glob("*.pub"))[-1]
    out = directory / "exports" / "after-erasure.jsonl"
    code = cli(
        [
            "export",
            str(directory / "kzai-audit"),
            "--format",
            "jsonl",
            "--public-key",
            str(public),
            "--origin",
            (directory / "kzai-audit" / "origin").read_text().strip(),  # the log this test made
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_after_erase_subject_no_file_holds_the_persons_identifier_or_personal_text(
    service: tuple[kg.Guard, Path],
) -> None:
    guard, directory = service
    erased_decision = live_through_the_law(guard, ERASED)
    kept_decision = live_through_the_law(guard, KEPT)
    guard.explanations.flush()
    guard.data_bases.flush()
    guard.sink.flush()  # type: ignore[attr-defined]
    before = files_holding(directory, [ERASED, *personal_texts(ERASED)])
    assert "kzai-guard.db" in before or "kzai-guard.db-wal" in before  # the test can fail

    removed = guard.erase_subject(ERASED)
    # export hands on records a signed checkpoint covers: sign one over all written so far
    guard.sink.checkpoint()  # type: ignore[attr-defined]
    exported = export(directory)

    assert removed == ErasedData(
        consents=1, objections=1, tickets=1, explanations=1, data_bases=1, override_notes=0
    )
    assert files_holding(directory, [ERASED, *personal_texts(ERASED)]) == {}
    assert guard.explanation(erased_decision) is None
    assert guard.data_basis(erased_decision) is None
    assert guard.consents.is_valid(ERASED, "credit-scoring", "v1") is False
    # the other person keeps all of it, and the export still reads their records
    kept = files_holding(directory, [KEPT, *personal_texts(KEPT)])
    assert {text for hits in kept.values() for text in hits} == {KEPT, *personal_texts(KEPT)}
    assert guard.explanation(kept_decision) is not None
    assert guard.data_basis(kept_decision) is not None
    assert exported.read_bytes().count(b'"[erased]"') > 0
    assert exported.read_bytes().count(b'"detail":"approved"') == 1  # the other's review

    guard.close()
    assert files_holding(directory, [ERASED, *personal_texts(ERASED)]) == {}


def lines_by_seq(audit: Path) -> dict[int, dict[str, Any]]:
    """Every line of the log, parsed, by sequence number."""
    lines: dict[int, dict[str, Any]] = {}
    for segment in list_segments(audit):
        for raw in segment.path.read_bytes().splitlines():
            value = orjson.loads(raw)
            lines[value["seq"]] = value
    return lines


# what docs/privacy.md says remains of an erased person: when, and how long the guard took
_TIMES = ("time", "latency_us")


def line_values(line: dict[str, Any]) -> set[object]:
    """Every value a line holds, in ``rec`` and ``sealed``, but its times."""
    rec = {k: v for k, v in line["rec"].items() if k not in _TIMES}
    return {*rec.values(), *line.get("sealed", {}).values()}


def test_after_erase_subject_no_two_remaining_records_of_the_person_share_a_value(
    service: tuple[kg.Guard, Path],
) -> None:
    guard, directory = service
    audit = directory / "kzai-audit"
    live_through_the_law(guard, ERASED)
    live_through_the_law(guard, KEPT)
    guard.sink.flush()  # type: ignore[attr-defined]
    pseudonym = guard.auditor.pseudonym(ERASED)
    theirs = [e.seq for e in read_verified(audit) if e.record.subject == pseudonym]
    # consent, decision, objection, routed decision, ticket opened, ticket completed
    assert len(theirs) == 6

    guard.erase_subject(ERASED)
    guard.sink.flush()  # type: ignore[attr-defined]

    lines = lines_by_seq(audit)
    everyone_else = set().union(*(line_values(v) for s, v in lines.items() if s not in theirs))
    linking = {
        (first, second, value)
        for first, second in itertools.combinations(theirs, 2)
        for value in line_values(lines[first]) & line_values(lines[second]) - everyone_else
    }
    assert linking == set()
    # and the lines cannot be read as the person's any more
    assert {e.record.subject for e in read_verified(audit) if e.seq in theirs} == {"[erased]"}


def test_reviewers_are_keyed_pseudonyms_and_erase_reviewer_erases_them(
    service: tuple[kg.Guard, Path],
) -> None:
    guard, directory = service
    staff = "risk.officer.aliya@bank.kz"
    other = "officer-7"
    guard.switches.suspend("loan_approval", by=other, reason="drift in the scores")
    guard.switches.resume("loan_approval", by=staff, reason="scores checked")
    guard.sink.flush()  # type: ignore[attr-defined]
    # a list of staff logins confirms nothing: no unkeyed hash of a login is written
    unkeyed = [subject_ref(login) for login in (staff, other)]
    assert files_holding(directory / "kzai-audit", unkeyed) == {}
    assert staff in {text for hits in files_holding(directory, [staff]).values() for text in hits}

    named = guard.erase_reviewer(staff)
    guard.sink.checkpoint()  # type: ignore[attr-defined]
    exported = export(directory).read_bytes()

    assert named == 1  # the switch's state names who set it last
    assert files_holding(directory, [staff]) == {}
    assert exported.count(b'"reviewer":"[erased]"') == 1
    assert guard.auditor.reviewer_ref(other).encode() in exported


def test_the_reviewers_work_is_erased_with_the_person_and_with_the_reviewer(
    tmp_path: Path,
) -> None:
    guard = kg.Guard(
        [LOAN, CARD],
        store=f"sqlite:///{tmp_path / 'kzai-guard.db'}",
        audit=tmp_path / "kzai-audit",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    staff = "risk.officer.aliya@bank.kz"
    reviewer = kg.Reviewer(id=staff)
    reason = personal_texts(ERASED)[3]

    @guard.decision("loan_approval")
    def decide() -> None:
        raise AssertionError("routed decisions do not run")

    try:
        tickets = {}
        for person in (ERASED, KEPT):
            guard.objections.record(person)
            with pytest.raises(kg.HumanReviewRequired) as routed, kg.decision_context(person):
                decide()
            tickets[person] = routed.value.ticket.id
        guard.oversight.escalate(tickets[ERASED], reviewer, reason)
        guard.oversight.claim(tickets[KEPT], reviewer)
        guard.override("decision-1", policy=CARD.name, reviewer=reviewer, action="correct")
        guard.sink.flush()  # type: ignore[attr-defined]
        assert files_holding(tmp_path, [reason]) != {}  # the test can fail

        guard.erase_subject(ERASED)
        assert files_holding(tmp_path, [reason]) == {}
        assert files_holding(tmp_path, [staff]) != {}

        named = guard.erase_reviewer(staff)
        guard.sink.flush()  # type: ignore[attr-defined]

        assert named == 3  # the claim, the escalation, the override
        assert guard.store.review_work([tickets[KEPT]])[tickets[KEPT]].claimed_by is None
        assert guard.store.overrides_of("decision-1")[0].reviewer == ""
        assert files_holding(tmp_path, [staff]) == {}
    finally:
        guard.close()


def test_override_notes_about_a_person_are_erased_with_them(tmp_path: Path) -> None:
    guard = kg.Guard(
        [CARD],
        store=f"sqlite:///{tmp_path / 'kzai-guard.db'}",
        audit=tmp_path / "kzai-audit",
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    reviewer = kg.Reviewer(id="officer-7")

    @guard.decision(CARD.name)
    def decide() -> None:
        kg.explain(explanation("card"))

    try:
        decisions = {}
        for person in (ERASED, KEPT):
            with kg.decision_context(person) as context:
                decide()
            assert context.decision_id is not None
            decisions[person] = context.decision_id
            guard.override(
                context.decision_id,
                policy=CARD.name,
                reviewer=reviewer,
                action="correct",
                note=personal_texts(person)[3],
            )
        guard.sink.flush()  # type: ignore[attr-defined]
        assert files_holding(tmp_path, [personal_texts(ERASED)[3]]) != {}  # the test can fail

        removed = guard.erase_subject(ERASED)

        assert removed.override_notes == 1
        assert files_holding(tmp_path, [personal_texts(ERASED)[3]]) == {}
        assert [o.note for o in guard.store.overrides_of(decisions[ERASED])] == [None]
        assert [o.note for o in guard.store.overrides_of(decisions[KEPT])] == [
            personal_texts(KEPT)[3]
        ]
        guard.sink.flush()  # type: ignore[attr-defined]
        records = [
            e.record
            for e in read_verified(tmp_path / "kzai-audit")
            if e.record.kind is kg.EventKind.DECISION_OVERRIDDEN
        ]
        assert [r.detail for r in records] == [
            "[erased]",
            f"correct {decisions[KEPT]}: {personal_texts(KEPT)[3]}",
        ]
    finally:
        guard.close()
