"""The enforcement table, property-tested: every combination of facts, every profile."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.facts import Facts
from kzai_guard.core.policy import DecisionPolicy, StatutoryBasis
from kzai_guard.core.profiles import Profile
from kzai_guard.core.rules import evaluate
from kzai_guard.core.verdict import Obligation, Outcome, Reason
from kzai_guard.core.vocabulary import (
    Autonomy,
    BasisKind,
    Capability,
    Fallback,
    Mode,
    RiskClass,
    Significance,
)

SIGNIFICANT = {Significance.SIMILARLY_SIGNIFICANT, Significance.LEGAL_EFFECT}
RESTRICTIVENESS = {Outcome.ALLOW: 0, Outcome.ROUTE: 1, Outcome.BLOCK: 2}


@st.composite
def policies(draw: st.DrawFn) -> DecisionPolicy:
    statutory = draw(
        st.one_of(
            st.none(),
            st.builds(StatutoryBasis, law=st.just("Law No. 1"), mandatory=st.booleans()),
        )
    )
    return DecisionPolicy(
        name="p",
        purpose=draw(st.one_of(st.none(), st.just("purpose"))),
        significance=draw(st.sampled_from(Significance)),
        autonomy=draw(st.sampled_from(Autonomy)),
        risk=draw(st.sampled_from(RiskClass)),
        statutory_basis=statutory,
        contract_necessity=draw(st.booleans()),
        fallback=draw(st.sampled_from(Fallback)),
        route_vulnerable=draw(st.booleans()),
        capabilities=draw(
            st.frozensets(st.sampled_from([Capability.EMOTION_RECOGNITION, Capability.PROFILING]))
        ),
        mode=draw(st.sampled_from(Mode)),
    )


facts = st.builds(
    Facts,
    suspended=st.booleans(),
    reviewer=st.booleans(),
    consent=st.booleans(),
    objection=st.booleans(),
    objection_signal=st.booleans(),
    vulnerable=st.booleans(),
    routed=st.booleans(),
)


def table(policy: DecisionPolicy, f: Facts, profile: Profile) -> tuple[Outcome, Reason]:
    """The rule table of the kz/eu profiles, written as first-matching rows."""
    statutory = policy.statutory_basis
    bases: list[tuple[BasisKind, Reason]] = []
    if f.consent:
        bases.append((BasisKind.CONSENT, Reason.CONSENT))
    if statutory is not None:
        bases.append((BasisKind.STATUTORY, Reason.STATUTORY_BASIS))
    if policy.contract_necessity and profile is Profile.EU:
        bases.append((BasisKind.CONTRACT, Reason.CONTRACT_NECESSITY))
    objected = f.objection or f.objection_signal
    cannot_refuse = statutory is not None and statutory.mandatory
    if objected and cannot_refuse:
        bases.insert(0, (BasisKind.STATUTORY, Reason.STATUTORY_BASIS))
    rows: list[tuple[bool, Outcome, Reason]] = [
        (f.suspended, Outcome.BLOCK, Reason.SUSPENDED),
        (
            Capability.EMOTION_RECOGNITION in policy.capabilities
            and not f.consent
            and statutory is None,
            Outcome.BLOCK,
            Reason.EMOTION_CONSENT_REQUIRED,
        ),
        (policy.significance not in SIGNIFICANT, Outcome.ALLOW, Reason.NOT_SIGNIFICANT),
        (f.reviewer, Outcome.ALLOW, Reason.HUMAN_DECISION),
        (policy.autonomy is Autonomy.LOW, Outcome.ROUTE, Reason.HUMAN_REQUIRED),
        (objected and not cannot_refuse, Outcome.ROUTE, Reason.OBJECTION),
        (f.vulnerable and policy.route_vulnerable, Outcome.ROUTE, Reason.VULNERABLE_SUBJECT),
        (bool(bases), Outcome.ALLOW, bases[0][1] if bases else Reason.CONSENT),
        (policy.fallback is Fallback.HUMAN, Outcome.ROUTE, Reason.NO_LEGAL_BASIS),
        (True, Outcome.BLOCK, Reason.NO_LEGAL_BASIS),
    ]
    outcome, reason = next((outcome, reason) for hit, outcome, reason in rows if hit)
    if f.routed and outcome is Outcome.ALLOW and reason is not Reason.HUMAN_DECISION:
        return Outcome.ROUTE, Reason.DISPARITY
    return outcome, reason


@given(policies(), facts, st.sampled_from([Profile.KZ, Profile.EU]))
def test_every_combination_of_facts_gets_the_verdict_of_the_table(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    verdict = evaluate(policy, f, profile)
    assert (verdict.outcome, verdict.reason) == table(policy, f, profile)


@given(policies(), facts)
def test_strictest_allows_only_what_both_profiles_allow(policy: DecisionPolicy, f: Facts) -> None:
    kz, eu = table(policy, f, Profile.KZ), table(policy, f, Profile.EU)
    expected = max((kz, eu), key=lambda row: RESTRICTIVENESS[row[0]])
    verdict = evaluate(policy, f, Profile.STRICTEST)
    assert (verdict.outcome, verdict.reason) == expected


@given(policies(), facts, st.sampled_from(Profile))
def test_a_solely_automated_significant_decision_is_allowed_only_with_a_legal_basis(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    verdict = evaluate(policy, f, profile)
    if verdict.allowed and policy.significance in SIGNIFICANT and not f.reviewer:
        assert verdict.basis in {BasisKind.CONSENT, BasisKind.STATUTORY, BasisKind.CONTRACT}
        assert (verdict.basis is BasisKind.CONSENT) == (verdict.reason is Reason.CONSENT)
        if verdict.basis is BasisKind.CONSENT:
            assert f.consent
        if verdict.basis is BasisKind.STATUTORY:
            assert policy.statutory_basis is not None
        if verdict.basis is BasisKind.CONTRACT:
            assert profile is Profile.EU and policy.contract_necessity


@given(policies(), facts, st.sampled_from(Profile))
def test_kz_never_accepts_contract_necessity(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    verdict = evaluate(policy, f, profile)
    if profile is not Profile.EU:
        assert verdict.basis is not BasisKind.CONTRACT


@given(policies(), facts, st.sampled_from(Profile))
def test_an_objection_never_makes_a_decision_more_automated(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    without = evaluate(policy, Facts(**{**_as_dict(f), "objection": False}), profile)
    with_objection = evaluate(policy, Facts(**{**_as_dict(f), "objection": True}), profile)
    if not without.allowed:
        assert not with_objection.allowed
    if with_objection.allowed and policy.significance in SIGNIFICANT and not f.reviewer:
        assert policy.statutory_basis is not None and policy.statutory_basis.mandatory


@given(policies(), facts, st.sampled_from(Profile))
def test_a_suspended_decision_type_is_always_blocked(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    verdict = evaluate(policy, Facts(**{**_as_dict(f), "suspended": True}), profile)
    assert (verdict.outcome, verdict.reason) == (Outcome.BLOCK, Reason.SUSPENDED)


@given(policies(), facts, st.sampled_from(Profile))
def test_routing_for_disparity_turns_only_ai_allowed_verdicts_into_disparity_routes(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    before = evaluate(policy, Facts(**{**_as_dict(f), "routed": False}), profile)
    routed = evaluate(policy, Facts(**{**_as_dict(f), "routed": True}), profile)
    if before.allowed and before.reason is not Reason.HUMAN_DECISION:
        assert (routed.outcome, routed.reason, routed.basis) == (
            Outcome.ROUTE,
            Reason.DISPARITY,
            None,
        )
        assert routed.obligations == frozenset()
    else:
        assert routed == before


@given(policies(), facts, st.sampled_from(Profile))
def test_allowed_verdicts_carry_the_duties_their_significance_asks(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    verdict = evaluate(policy, f, profile)
    if not verdict.allowed:
        assert verdict.obligations == frozenset()
    elif policy.significance is Significance.NONE:
        assert verdict.obligations == {Obligation.DISCLOSURE}
    else:
        assert verdict.obligations == {Obligation.DISCLOSURE, Obligation.EXPLANATION}


@given(policies(), facts, st.sampled_from(Profile))
def test_the_mode_does_not_change_the_verdict(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    enforce = policy.model_copy(update={"mode": Mode.ENFORCE})
    monitor = policy.model_copy(update={"mode": Mode.MONITOR})
    assert evaluate(enforce, f, profile) == evaluate(monitor, f, profile)


def _as_dict(f: Facts) -> dict[str, bool]:
    return {name: getattr(f, name) for name in Facts.__slots__}
