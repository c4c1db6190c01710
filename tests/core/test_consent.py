"""When a consent or an objection counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.consent import (
    CollectionMethod,
    Consent,
    Objection,
    WithdrawalRestriction,
    consent_is_valid,
    objection_applies,
    withdrawal_restricted,
)
from kzai_guard.fact_cache import SubjectState

T0 = datetime(2026, 3, 1, tzinfo=UTC)
times = st.integers(-10_000, 10_000).map(lambda s: T0 + timedelta(seconds=s))


@st.composite
def consents(draw: st.DrawFn) -> Consent:
    granted = draw(times)
    return Consent(
        id="c",
        subject="A-1",
        purpose="credit",
        notice_version=draw(st.sampled_from(["v1", "v2"])),
        notice_digest=None,
        method=CollectionMethod.WEB_FORM,
        granted_at=granted,
        expires_at=draw(st.one_of(st.none(), times)),
        withdrawn_at=draw(st.one_of(st.none(), times)),
    )


@given(consents(), times, st.sampled_from([None, "v1", "v2"]))
def test_a_consent_counts_only_granted_unwithdrawn_unexpired_and_for_the_notice(
    consent: Consent, at: datetime, notice: str | None
) -> None:
    expected = (
        consent.withdrawn_at is None
        and consent.granted_at <= at
        and (consent.expires_at is None or at < consent.expires_at)
        and (notice is None or notice == consent.notice_version)
    )
    assert consent_is_valid(consent, notice_version=notice, at=at) is expected


def test_no_consent_never_counts() -> None:
    assert consent_is_valid(None, notice_version=None, at=T0) is False


@given(st.lists(consents(), max_size=4), times, st.sampled_from([None, "v1", "v2"]))
def test_a_cached_subject_state_agrees_with_the_rule(
    records: list[Consent], at: datetime, notice: str | None
) -> None:
    active = tuple(c for c in records if c.withdrawn_at is None)
    state = SubjectState(
        consents={"credit": active} if active else {},
        objects_to_all=False,
        objects_to=frozenset(),
    )
    expected = any(consent_is_valid(c, notice_version=notice, at=at) for c in records)
    assert state.consent_valid("credit", notice, at) is expected
    assert state.consent_valid("other-purpose", notice, at) is False


def test_a_general_objection_covers_every_policy_and_a_specific_one_only_its_own() -> None:
    general = Objection(id="o", subject="A-1", policy=None, recorded_at=T0)
    specific = Objection(id="o", subject="A-1", policy="loan", recorded_at=T0)
    withdrawn = Objection(id="o", subject="A-1", policy=None, recorded_at=T0, withdrawn_at=T0)
    assert objection_applies(general, "anything") is True
    assert objection_applies(specific, "loan") is True
    assert objection_applies(specific, "hiring") is False
    assert objection_applies(withdrawn, "loan") is False


@given(consents(), times, times)
def test_a_withdrawal_is_restricted_exactly_while_the_restriction_is_in_force(
    consent: Consent, until: datetime, at: datetime
) -> None:
    restricted = replace(
        consent, withdrawal_restriction=WithdrawalRestriction("loan 77-1 is outstanding", until)
    )
    assert withdrawal_restricted(restricted, at) is (consent.withdrawn_at is None and at < until)
    assert withdrawal_restricted(consent, at) is False
