"""Audit records carry keyed pseudonyms of subjects, never the raw identifiers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kzai_guard as kg
from kzai_guard.core.subject import check_subject
from kzai_guard.testing import memory_guard
from tests.samples import EXPLANATION, GATEWAY_SUBJECT, LOAN

KEY_A = b"a" * 32
KEY_B = b"b" * 32
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")
IDENTIFIER_FIELDS = ("id", "review_id")
DIGEST_FIELDS = ("policy_digest", "explanation_digest")
NUMERIC_FIELDS = ("time", "latency_us")
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _valid(subject: str) -> bool:
    try:
        check_subject(subject)
    except ValueError:
        return False
    return True


SUBJECTS = st.text(
    alphabet=st.characters(blacklist_categories=("C", "Z"), whitelist_characters=" "),
    min_size=4,
    max_size=256,
).filter(_valid)


def lifecycle(guard: kg.Guard, subject: str) -> None:
    """Grant, decide, object, decide, withdraw both, decide."""

    @guard.decision("loan_approval")
    def score() -> str:
        kg.explain(EXPLANATION)
        return "approved"

    guard.consents.grant(subject, "credit-scoring", "v1")
    with kg.decision_context(subject):
        score()
    guard.objections.record(subject, "loan_approval", channel="web")
    with kg.decision_context(subject), pytest.raises(kg.HumanReviewRequired):
        score()
    guard.objections.withdraw(subject, "loan_approval")
    guard.consents.withdraw(subject, "credit-scoring")
    with kg.decision_context(subject), pytest.raises(kg.DecisionBlocked):
        score()


def records_of(guard: kg.Guard, sink: kg.MemorySink, subject: str) -> list[kg.AuditRecord]:
    start = len(sink.records)
    lifecycle(guard, subject)
    return sink.records[start:]


EXPECTED_KINDS = [
    kg.EventKind.CONSENT_GRANTED,
    kg.EventKind.DECISION,
    kg.EventKind.OBJECTION_RECORDED,
    kg.EventKind.DECISION,
    kg.EventKind.REVIEW_OPENED,
    kg.EventKind.OBJECTION_WITHDRAWN,
    kg.EventKind.CONSENT_WITHDRAWN,
    kg.EventKind.DECISION,
]


def test_audit_records_never_contain_the_raw_subject() -> None:
    guard, sink = memory_guard(
        [LOAN], contact="credit@example.kz", pseudonym_key=KEY_A, subject=GATEWAY_SUBJECT
    )
    try:
        reference = records_of(guard, sink, "reference-subject-0")
        assert [r.kind for r in reference] == EXPECTED_KINDS

        @SETTINGS
        @given(SUBJECTS)
        def check(subject: str) -> None:
            records = records_of(guard, sink, subject)
            assert [r.kind for r in records] == EXPECTED_KINDS
            pseudonym = guard.auditor.pseudonym(subject)
            for record, ref in zip(records, reference, strict=True):
                fields = record.as_dict()
                assert fields["subject"] == pseudonym
                for name in IDENTIFIER_FIELDS:
                    if name in fields:
                        assert UUID.match(fields[name]), (name, fields[name])
                for name in DIGEST_FIELDS:
                    if name in fields:
                        assert HEX64.match(fields[name]), (name, fields[name])
                reference_fields = ref.as_dict()
                for name, value in fields.items():
                    if name in ("subject", *IDENTIFIER_FIELDS, *DIGEST_FIELDS, *NUMERIC_FIELDS):
                        continue
                    assert isinstance(value, str), (name, value)
                    assert subject not in value or value == reference_fields.get(name), name

        check()
    finally:
        guard.close()


def test_pseudonym_is_32_hex_digits_and_not_the_subject() -> None:
    guard, sink = memory_guard(
        [LOAN], contact="credit@example.kz", pseudonym_key=KEY_A, subject=GATEWAY_SUBJECT
    )
    try:
        guard.consents.grant("880101300123", "credit-scoring", "v1")
        [record] = sink.of_kind(kg.EventKind.CONSENT_GRANTED)
        assert record.subject is not None
        assert PSEUDONYM.match(record.subject)
        assert "880101300123" not in record.subject
    finally:
        guard.close()


def _granted_pseudonym(guard: kg.Guard, sink: kg.MemorySink) -> Callable[[str], str | None]:
    def grant(subject: str) -> str | None:
        guard.consents.grant(subject, "credit-scoring", "v1")
        return sink.records[-1].subject

    return grant


def test_pseudonym_is_stable_for_one_key_and_differs_across_keys() -> None:
    first, first_sink = memory_guard(
        [LOAN], contact="credit@example.kz", pseudonym_key=KEY_A, subject=GATEWAY_SUBJECT
    )
    second, second_sink = memory_guard(
        [LOAN], contact="credit@example.kz", pseudonym_key=KEY_A, subject=GATEWAY_SUBJECT
    )
    other, other_sink = memory_guard(
        [LOAN], contact="credit@example.kz", pseudonym_key=KEY_B, subject=GATEWAY_SUBJECT
    )
    try:
        in_first = _granted_pseudonym(first, first_sink)
        in_second = _granted_pseudonym(second, second_sink)
        in_other = _granted_pseudonym(other, other_sink)

        @SETTINGS
        @given(SUBJECTS)
        def check(subject: str) -> None:
            pseudonym = in_first(subject)
            assert pseudonym is not None and len(pseudonym) == 32
            assert in_first(subject) == pseudonym
            assert in_second(subject) == pseudonym
            assert in_other(subject) != pseudonym

        check()
    finally:
        first.close()
        second.close()
        other.close()


def test_distinct_subjects_get_distinct_pseudonyms() -> None:
    guard, sink = memory_guard(
        [LOAN], contact="credit@example.kz", pseudonym_key=KEY_A, subject=GATEWAY_SUBJECT
    )
    try:
        grant = _granted_pseudonym(guard, sink)

        @SETTINGS
        @given(st.lists(SUBJECTS, min_size=2, max_size=5, unique=True))
        def check(subjects: list[str]) -> None:
            pseudonyms = [grant(subject) for subject in subjects]
            assert len(set(pseudonyms)) == len(subjects)

        check()
    finally:
        guard.close()


def test_store_kept_key_gives_the_same_pseudonyms_after_reopening(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/kzg.db"
    first, first_sink = memory_guard(
        [LOAN], contact="credit@example.kz", store=url, pseudonym_key=None, subject=GATEWAY_SUBJECT
    )
    try:
        before = _granted_pseudonym(first, first_sink)("A-1")
    finally:
        first.close()
    again, again_sink = memory_guard(
        [LOAN], contact="credit@example.kz", store=url, pseudonym_key=None, subject=GATEWAY_SUBJECT
    )
    try:
        after = _granted_pseudonym(again, again_sink)("A-1")
    finally:
        again.close()

    assert before is not None and PSEUDONYM.match(before)
    assert after == before
