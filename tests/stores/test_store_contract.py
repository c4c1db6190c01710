"""The store contract, held by every backend: memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kzai_guard as kg
from kzai_guard.core.consent import CollectionMethod, Consent, Objection, WithdrawalRestriction
from kzai_guard.core.review import ReviewOutcome, ReviewStatus, ReviewTicket
from kzai_guard.errors import StoreError, UnknownRecord, WithdrawalRestricted
from kzai_guard.stores.base import (
    ChangeKind,
    ErasedData,
    RoutingState,
    Store,
    StoredDataBasis,
    StoredExplanation,
    SwitchState,
)
from kzai_guard.stores.url import open_store
from tests.postgres import fresh_database
from tests.samples import GATEWAY_SUBJECT, LOAN

BACKENDS = ("memory", "sqlite", "postgresql")
PERSISTENT_BACKENDS = ("sqlite", "postgresql")
T0 = datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    backend: str = request.param
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'kzg.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def opener(store_url: str) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []

    def open_one() -> Store:
        store = open_store(store_url)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    return opener()


def backends(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("store_url", names, indirect=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def consent(subject: str, purpose: str, *, at: datetime = T0, **fields: object) -> Consent:
    values: dict[str, object] = {
        "id": unique("c"),
        "subject": subject,
        "purpose": purpose,
        "notice_version": "v1",
        "notice_digest": None,
        "method": CollectionMethod.WEB_FORM,
        "granted_at": at,
    }
    values.update(fields)
    return Consent(**values)  # type: ignore[arg-type]


def objection(subject: str, policy: str | None, *, at: datetime = T0) -> Objection:
    return Objection(id=unique("o"), subject=subject, policy=policy, recorded_at=at, channel="web")


def ticket(subject: str, *, at: datetime = T0) -> ReviewTicket:
    return ReviewTicket(
        id=unique("r"),
        decision_id=unique("d"),
        policy="loan_approval",
        subject=subject,
        reason="objection",
        status=ReviewStatus.OPEN,
        opened_at=at,
        deadline=at + timedelta(days=3),
    )


def explanation(decision_id: str, body: bytes) -> StoredExplanation:
    return StoredExplanation(
        decision_id=decision_id,
        subject_ref="0f" * 16,
        policy="loan_approval",
        created_at=T0,
        body=body,
        digest="ab" * 32,
    )


# -- consents ---------------------------------------------------------------------------------


@backends(*BACKENDS)
def test_consents_of_lists_added_consents_oldest_first(store: Store) -> None:
    subject = unique("s")
    later = consent(subject, "marketing", at=T0 + timedelta(seconds=1))
    earlier = consent(
        subject,
        "credit-scoring",
        notice_digest="d" * 64,
        method=CollectionMethod.DIGITAL_SIGNATURE,
        expires_at=T0 + timedelta(days=365),
    )
    store.add_consent(later)
    store.add_consent(earlier)
    store.add_consent(consent(unique("other"), "credit-scoring"))

    assert store.consents_of(subject) == [earlier, later]


@backends(*BACKENDS)
def test_withdraw_consents_withdraws_only_the_matching_purpose_and_returns_it(
    store: Store,
) -> None:
    subject = unique("s")
    credit = consent(subject, "credit-scoring")
    marketing = consent(subject, "marketing", at=T0 + timedelta(seconds=1))
    store.add_consent(credit)
    store.add_consent(marketing)
    at = T0 + timedelta(hours=1)

    withdrawn = store.withdraw_consents(subject, "credit-scoring", at)

    assert withdrawn == [replace(credit, withdrawn_at=at)]
    assert store.consents_of(subject) == [replace(credit, withdrawn_at=at), marketing]


@backends(*BACKENDS)
def test_withdraw_consents_returns_nothing_when_none_is_in_force(store: Store) -> None:
    subject = unique("s")
    store.add_consent(consent(subject, "credit-scoring"))
    store.withdraw_consents(subject, "credit-scoring", T0 + timedelta(hours=1))

    assert store.withdraw_consents(subject, "credit-scoring", T0 + timedelta(hours=2)) == []


@backends(*BACKENDS)
def test_withdraw_consents_keeps_the_first_withdrawal_time(store: Store) -> None:
    subject = unique("s")
    granted = consent(subject, "credit-scoring")
    store.add_consent(granted)
    first = T0 + timedelta(hours=1)
    store.withdraw_consents(subject, "credit-scoring", first)
    store.withdraw_consents(subject, "credit-scoring", T0 + timedelta(hours=2))

    assert store.consents_of(subject) == [replace(granted, withdrawn_at=first)]


# -- objections -------------------------------------------------------------------------------


@backends(*BACKENDS)
def test_objections_of_lists_general_and_per_policy_objections(store: Store) -> None:
    subject = unique("s")
    general = objection(subject, None)
    specific = objection(subject, "loan_approval", at=T0 + timedelta(seconds=1))
    store.add_objection(general)
    store.add_objection(specific)

    assert store.objections_of(subject) == [general, specific]


@backends(*BACKENDS)
def test_withdrawing_the_general_objection_leaves_per_policy_ones_in_force(store: Store) -> None:
    subject = unique("s")
    general = objection(subject, None)
    specific = objection(subject, "loan_approval", at=T0 + timedelta(seconds=1))
    store.add_objection(general)
    store.add_objection(specific)
    at = T0 + timedelta(hours=1)

    withdrawn = store.withdraw_objections(subject, None, at)

    assert [o.id for o in withdrawn] == [general.id]
    assert store.objections_of(subject) == [replace(general, withdrawn_at=at), specific]


@backends(*BACKENDS)
def test_withdrawing_a_per_policy_objection_leaves_the_general_one_in_force(
    store: Store,
) -> None:
    subject = unique("s")
    general = objection(subject, None)
    specific = objection(subject, "loan_approval", at=T0 + timedelta(seconds=1))
    other = objection(subject, "card_limit", at=T0 + timedelta(seconds=2))
    for item in (general, specific, other):
        store.add_objection(item)
    at = T0 + timedelta(hours=1)

    withdrawn = store.withdraw_objections(subject, "loan_approval", at)

    assert [o.id for o in withdrawn] == [specific.id]
    assert store.objections_of(subject) == [general, replace(specific, withdrawn_at=at), other]


# -- kill switches ----------------------------------------------------------------------------


@backends(*BACKENDS)
def test_set_switch_upserts_one_state_per_policy(store: Store) -> None:
    policy = unique("p")
    suspended = SwitchState(policy, True, T0, "ops@example.kz", "model drift")
    resumed = SwitchState(policy, False, T0 + timedelta(minutes=5), "lead@example.kz", None)

    store.set_switch(suspended)
    assert [s for s in store.switches() if s.policy == policy] == [suspended]
    store.set_switch(resumed)
    assert [s for s in store.switches() if s.policy == policy] == [resumed]


@backends(*BACKENDS)
def test_set_routing_upserts_one_state_per_policy_and_feeds_a_switch_change(
    store: Store,
) -> None:
    policy = unique("p")
    routed = RoutingState(policy, True, T0, "disparity-monitor", "sex=f: selection rate 0.2")
    cleared = RoutingState(policy, False, T0 + timedelta(days=1), "officer@example.kz", None)
    before = store.latest_change()

    store.set_routing(routed)
    assert [r for r in store.routings() if r.policy == policy] == [routed]
    store.set_routing(cleared)
    assert [r for r in store.routings() if r.policy == policy] == [cleared]
    assert [c.kind for c in store.changes_since(before)] == [ChangeKind.SWITCH] * 2


@backends(*BACKENDS)
def test_erase_reviewer_removes_the_name_from_routings(store: Store) -> None:
    policy, officer = unique("p"), unique("officer")
    store.set_routing(RoutingState(policy, False, T0, officer, "cleared"))

    assert store.erase_reviewer(officer) == 1
    [routing] = [r for r in store.routings() if r.policy == policy]
    assert (routing.changed_by, routing.reason) == ("", "cleared")


# -- review tickets ---------------------------------------------------------------------------


@backends(*BACKENDS)
def test_get_review_returns_the_ticket_as_added(store: Store) -> None:
    opened = ticket(unique("s"))
    store.add_review(opened)

    assert store.get_review(opened.id) == opened
    assert opened in store.open_reviews()


@backends(*BACKENDS)
def test_complete_review_records_reviewer_outcome_note_and_time(store: Store) -> None:
    opened = ticket(unique("s"))
    store.add_review(opened)
    at = T0 + timedelta(days=1)

    done = store.complete_review(
        opened.id, reviewer="alice", outcome=ReviewOutcome.REJECTED, note="income unverified", at=at
    )

    expected = replace(
        opened,
        status=ReviewStatus.COMPLETED,
        reviewer="alice",
        outcome=ReviewOutcome.REJECTED,
        note="income unverified",
        completed_at=at,
    )
    assert done == expected
    assert store.get_review(opened.id) == expected
    assert opened.id not in {t.id for t in store.open_reviews()}


@backends(*BACKENDS)
def test_completing_a_review_twice_raises_store_error(store: Store) -> None:
    opened = ticket(unique("s"))
    store.add_review(opened)
    store.complete_review(
        opened.id, reviewer="alice", outcome=ReviewOutcome.APPROVED, note=None, at=T0
    )

    with pytest.raises(StoreError, match="already completed") as caught:
        store.complete_review(
            opened.id, reviewer="bob", outcome=ReviewOutcome.REJECTED, note=None, at=T0
        )
    assert not isinstance(caught.value, UnknownRecord)
    assert store.get_review(opened.id).reviewer == "alice"


@backends(*BACKENDS)
def test_get_review_of_an_unknown_id_raises_unknown_record(store: Store) -> None:
    with pytest.raises(UnknownRecord):
        store.get_review(unique("missing"))


@backends(*BACKENDS)
def test_completing_an_unknown_review_raises_unknown_record(store: Store) -> None:
    with pytest.raises(UnknownRecord):
        store.complete_review(
            unique("missing"), reviewer="alice", outcome=ReviewOutcome.APPROVED, note=None, at=T0
        )


# -- explanations -----------------------------------------------------------------------------


@backends(*BACKENDS)
def test_add_explanations_keeps_the_first_copy_per_decision_id(store: Store) -> None:
    decision_id = unique("d")
    first = explanation(
        decision_id,
        '{"summary":{"ru":"Одобрено"},"factors":[{"weight":0.5}],"contact":null}'.encode(),
    )
    second = explanation(decision_id, b'{"summary":{"en":"changed"}}')

    store.add_explanations([first])
    store.add_explanations([second])

    assert store.get_explanation(decision_id) == first


@backends(*BACKENDS)
def test_get_explanation_of_an_unknown_decision_is_none(store: Store) -> None:
    assert store.get_explanation(unique("d")) is None


# -- change feed ------------------------------------------------------------------------------


@backends(*BACKENDS)
def test_change_feed_lists_each_verdict_changing_write_in_order(store: Store) -> None:
    subject = unique("s")
    start = store.latest_change()
    store.add_consent(consent(subject, "credit-scoring"))
    store.add_review(ticket(subject))
    store.add_objection(objection(subject, None))
    store.add_explanations([explanation(unique("d"), b"{}")])
    store.set_switch(SwitchState(unique("p"), True, T0, "ops", None))
    store.withdraw_consents(subject, "credit-scoring", T0)
    store.withdraw_objections(subject, None, T0)

    changes = store.changes_since(start)

    assert [(c.kind, c.subject) for c in changes] == [
        (ChangeKind.CONSENT, subject),
        (ChangeKind.OBJECTION, subject),
        (ChangeKind.SWITCH, None),
        (ChangeKind.CONSENT, subject),
        (ChangeKind.OBJECTION, subject),
    ]
    seqs = [c.seq for c in changes]
    assert all(a < b for a, b in zip([start, *seqs], seqs, strict=False))
    assert store.latest_change() == seqs[-1]


@backends(*BACKENDS)
def test_changes_since_returns_only_later_changes(store: Store) -> None:
    first_subject, second_subject = unique("s"), unique("s")
    store.add_consent(consent(first_subject, "credit-scoring"))
    middle = store.latest_change()
    store.add_consent(consent(second_subject, "credit-scoring"))

    assert [c.subject for c in store.changes_since(middle)] == [second_subject]
    assert store.changes_since(store.latest_change()) == []


@backends("memory", "sqlite")
def test_latest_change_of_a_new_store_is_zero(store: Store) -> None:
    assert store.latest_change() == 0
    assert store.changes_since(0) == []


# -- secrets ----------------------------------------------------------------------------------


@backends(*BACKENDS)
def test_secret_is_created_once_and_returned_unchanged(store: Store) -> None:
    name = unique("secret")
    calls: list[int] = []

    def factory() -> bytes:
        calls.append(1)
        return bytes(range(32))

    first = store.secret(name, factory)
    second = store.secret(name, lambda: b"other" * 8)

    assert first == bytes(range(32))
    assert second == first
    assert calls == [1]


@backends(*PERSISTENT_BACKENDS)
def test_secret_is_stable_across_reopening_the_store(opener: Callable[[], Store]) -> None:
    name = unique("secret")
    first = opener()
    created = first.secret(name, lambda: b"\x00\xff" * 16)
    first.close()

    reopened = opener()

    assert reopened.secret(name, lambda: b"other" * 8) == b"\x00\xff" * 16 == created


@backends(*PERSISTENT_BACKENDS)
def test_records_survive_reopening_the_store(opener: Callable[[], Store]) -> None:
    subject = unique("s")
    granted = consent(subject, "credit-scoring")
    first = opener()
    first.add_consent(granted)
    seq = first.latest_change()
    first.close()

    reopened = opener()

    assert reopened.consents_of(subject) == [granted]
    assert reopened.latest_change() == seq


# -- lifecycle --------------------------------------------------------------------------------


@backends(*BACKENDS)
def test_a_closed_store_raises_store_error_on_reads_and_writes(store: Store) -> None:
    subject = unique("s")
    store.close()
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.consents_of(subject)
    with pytest.raises(StoreError, match="closed"):
        store.add_consent(consent(subject, "credit-scoring"))
    with pytest.raises(StoreError, match="closed"):
        store.latest_change()


# -- through the guard ------------------------------------------------------------------------


@backends(*BACKENDS)
def test_consent_purpose_with_nul_is_refused_alike_by_every_backend(store: Store) -> None:
    guard = kg.Guard(
        [LOAN],
        store=store,
        audit=kg.MemorySink(),
        pseudonym_key=b"x" * 32,
        contact="credit@example.kz",
        subject=GATEWAY_SUBJECT,
    )
    try:
        with pytest.raises(ValueError):
            guard.consents.grant(unique("s"), "credit\x00scoring", "v1")
    finally:
        guard.close()


# -- round trip -------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=80,
)
_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_AWARE = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_OFFSETS
)
_CONSENTS = st.builds(
    Consent,
    id=st.just("pending"),
    subject=_TEXT,
    purpose=_TEXT,
    notice_version=_TEXT,
    notice_digest=st.none() | _TEXT,
    method=st.sampled_from(CollectionMethod),
    granted_at=_AWARE,
    expires_at=st.none() | _AWARE,
    withdrawn_at=st.none() | _AWARE,
    withdrawal_restriction=st.none() | st.builds(WithdrawalRestriction, ground=_TEXT, until=_AWARE),
)


@backends(*BACKENDS)
def test_consent_records_round_trip_unchanged(store: Store) -> None:
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    @given(_CONSENTS)
    def round_trip(generated: Consent) -> None:
        record = replace(generated, id=unique("c"))
        store.add_consent(record)
        read = [c for c in store.consents_of(record.subject) if c.id == record.id]
        assert read == [record]
        assert all(
            moment is None or moment.utcoffset() == timedelta(0)
            for moment in (read[0].granted_at, read[0].expires_at, read[0].withdrawn_at)
        )

    round_trip()


@backends(*BACKENDS)
def test_a_restricted_consent_is_not_withdrawn_until_its_restriction_ends(store: Store) -> None:
    subject = unique("s")
    until = T0 + timedelta(days=30)
    restricted = replace(
        consent(subject, "credit-scoring"),
        withdrawal_restriction=WithdrawalRestriction("loan 77-1 is outstanding", until),
    )
    free = consent(subject, "credit-scoring")
    store.add_consent(restricted)
    store.add_consent(free)
    start = store.latest_change()

    with pytest.raises(WithdrawalRestricted) as refused:
        store.withdraw_consents(subject, "credit-scoring", until - timedelta(microseconds=1))

    assert (refused.value.restrictions, refused.value.until) == (
        (restricted.withdrawal_restriction,),
        until,
    )
    assert [c.withdrawn_at for c in store.consents_of(subject)] == [None, None]
    assert store.changes_since(start) == []
    withdrawn = store.withdraw_consents(subject, "credit-scoring", until)
    assert sorted(c.id for c in withdrawn) == sorted([restricted.id, free.id])


# -- erasure ----------------------------------------------------------------------------------


@backends(*BACKENDS)
def test_erasing_a_subject_removes_their_rows_and_explanations_and_keeps_anothers(
    store: Store,
) -> None:
    erased, kept = unique("s"), unique("s")
    erased_ref, kept_ref = "e1" * 16, "k1" * 16
    start = store.latest_change()
    for subject in (erased, kept):
        store.add_consent(consent(subject, "credit-scoring"))
        store.add_objection(objection(subject, None))
    tickets = {subject: ticket(subject) for subject in (erased, kept)}
    for made in tickets.values():
        store.add_review(made)
    store.complete_review(
        tickets[erased].id, reviewer="officer-7", outcome=ReviewOutcome.APPROVED, note="n", at=T0
    )
    ids = [f"01a2{n:04x}-0000-7000-8000-000000000000" for n in range(6)]
    # one page mixing both subjects, one page of the erased subject alone
    store.add_explanations(
        [
            replace(explanation(ids[0], b'{"mine":1}'), subject_ref=erased_ref),
            replace(explanation(ids[1], b'{"theirs":1}'), subject_ref=kept_ref),
        ]
    )
    store.add_explanations([replace(explanation(ids[2], b'{"mine":2}'), subject_ref=erased_ref)])

    removed = store.erase_subject(erased, erased_ref)

    assert removed == ErasedData(consents=1, objections=1, tickets=1, explanations=2)
    assert store.consents_of(erased) == [] and store.objections_of(erased) == []
    assert store.get_explanation(ids[0]) is None and store.get_explanation(ids[2]) is None
    left = store.get_review(tickets[erased].id)
    assert (left.subject, left.note, left.status, left.reviewer) == (
        "",
        None,
        ReviewStatus.COMPLETED,
        "officer-7",
    )
    assert all(change.subject != erased for change in store.changes_since(start))
    assert store.changes_since(start)[-1].subject is None
    # the other person is untouched
    assert len(store.consents_of(kept)) == len(store.objections_of(kept)) == 1
    assert store.get_review(tickets[kept].id).subject == kept
    theirs = store.get_explanation(ids[1])
    assert theirs is not None and theirs.body == b'{"theirs":1}'
    assert store.erase_subject(erased, erased_ref) == ErasedData(0, 0, 0, 0)


# -- data bases -------------------------------------------------------------------------------


def data_basis(decision_id: str, subject_ref: str, body: bytes) -> StoredDataBasis:
    return StoredDataBasis(
        decision_id=decision_id,
        subject_ref=subject_ref,
        policy="loan_approval",
        created_at=T0,
        body=body,
        digest="cd" * 32,
        missing=("employer", "region"),
    )


@backends(*BACKENDS)
def test_add_data_bases_keeps_the_first_copy_per_decision_id(store: Store) -> None:
    decision_id = unique("d")
    first = data_basis(decision_id, "0f" * 16, '{"salt":"1","values":{"имя":"Алия"}}'.encode())

    store.add_data_bases([first])
    store.add_data_bases([data_basis(decision_id, "0f" * 16, b'{"salt":"2","values":{}}')])

    assert store.data_basis_of(decision_id) == first
    assert store.data_basis_of(unique("d")) is None


@backends(*BACKENDS)
def test_erasing_a_subject_removes_their_data_bases_and_the_notes_of_overrides_about_them(
    store: Store,
) -> None:
    erased = unique("s")
    erased_ref, kept_ref = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    mine, theirs = unique("d"), unique("d")
    store.add_data_bases(
        [
            data_basis(mine, erased_ref, b'{"salt":"1","values":{"a":1}}'),
            data_basis(theirs, kept_ref, b'{"salt":"2","values":{"a":2}}'),
        ]
    )
    routed = ticket(erased)
    store.add_review(routed)

    def override(decision_id: str, subject_ref: str | None) -> kg.ReviewerOverride:
        made = kg.ReviewerOverride(
            unique("o"),
            decision_id,
            "card_limit",
            "officer-7",
            kg.OverrideAction.CORRECT,
            f"note on {decision_id}",
            T0,
            subject_ref,
        )
        store.add_override(made)
        return made

    # known by the override's subject_ref, by the person's data basis, by their ticket
    override(unique("d"), erased_ref)
    override(mine, None)
    override(routed.decision_id, None)
    other = override(theirs, kept_ref)

    removed = store.erase_subject(erased, erased_ref)

    assert (removed.data_bases, removed.override_notes) == (1, 3)
    assert store.data_basis_of(mine) is None
    assert [o.note for o in store.overrides_of(mine)] == [None]
    assert [o.note for o in store.overrides_of(routed.decision_id)] == [None]
    assert store.overrides_of(theirs) == [other]
    assert store.data_basis_of(theirs) is not None
