"""The enforcement rules: ``evaluate(policy, facts, profile) -> Verdict``.

For a single-jurisdiction profile, in order:

1. A suspended decision type is blocked (``suspended``).
2. Emotion recognition without consent or a statutory basis is blocked (KZ-AI 17(3)(6)).
3. A decision that is not significant is allowed, with the disclosure duty (and the explanation
   duty when it affects the person's interests).
4. With an authenticated human decision-maker it is allowed (``human-decision``).
5. Low autonomy without one: routed to a human (``human-required``).
6. Otherwise the decision would be solely automated:
   - an objection (stored or signalled) routes it, unless the statutory basis is one the person
     cannot refuse;
   - a vulnerable person routes it when the policy says so;
   - a valid consent, a statutory basis, or (where the profile accepts it) contract necessity
     allows it, with both duties;
   - otherwise it is blocked (``no-legal-basis``), or routed when the policy's fallback is human.

While the policy's decisions are routed for disparity (``routed``), a verdict that lets the AI
decide (any ``allow`` but ``human-decision``) becomes ``route`` (``disparity``); every other
verdict stands, so the routing never makes a decision less restricted.

``strictest`` evaluates every component profile and keeps the most restrictive verdict.
"""

from __future__ import annotations

from kzai_guard.core.facts import Facts
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.profiles import Profile, accepted_bases
from kzai_guard.core.verdict import Obligation, Outcome, Reason, Verdict, verdict
from kzai_guard.core.vocabulary import Autonomy, BasisKind, Capability, Fallback, Significance

__all__ = ["evaluate"]

_DISCLOSE = frozenset({Obligation.DISCLOSURE})
_DISCLOSE_EXPLAIN = frozenset({Obligation.DISCLOSURE, Obligation.EXPLANATION})
_DISPARITY_ROUTE = verdict(Outcome.ROUTE, Reason.DISPARITY)
_SEVERITY = {Outcome.ALLOW: 0, Outcome.ROUTE: 1, Outcome.BLOCK: 2}


def evaluate(policy: DecisionPolicy, facts: Facts, profile: Profile = Profile.KZ) -> Verdict:
    """Decide what may happen to one decision request. Pure: no I/O, no clock."""
    if profile is Profile.STRICTEST:
        verdicts = [_evaluate_one(policy, facts, p) for p in profile.components]
        return max(verdicts, key=lambda v: _SEVERITY[v.outcome])
    return _evaluate_one(policy, facts, profile)


def _evaluate_one(policy: DecisionPolicy, facts: Facts, profile: Profile) -> Verdict:
    found = _rules(policy, facts, profile)
    if facts.routed and found.allowed and found.reason is not Reason.HUMAN_DECISION:
        return _DISPARITY_ROUTE
    return found


def _rules(policy: DecisionPolicy, facts: Facts, profile: Profile) -> Verdict:
    if facts.suspended:
        return verdict(Outcome.BLOCK, Reason.SUSPENDED)
    statutory = policy.statutory_basis
    if (
        Capability.EMOTION_RECOGNITION in policy.capabilities
        and not facts.consent
        and statutory is None
    ):
        return verdict(Outcome.BLOCK, Reason.EMOTION_CONSENT_REQUIRED)
    if not policy.significance.is_significant:
        duties = (
            _DISCLOSE_EXPLAIN
            if policy.significance is Significance.AFFECTS_INTERESTS
            else _DISCLOSE
        )
        return verdict(Outcome.ALLOW, Reason.NOT_SIGNIFICANT, None, duties)
    if facts.reviewer:
        return verdict(Outcome.ALLOW, Reason.HUMAN_DECISION, BasisKind.HUMAN, _DISCLOSE_EXPLAIN)
    if policy.autonomy is Autonomy.LOW:
        return verdict(Outcome.ROUTE, Reason.HUMAN_REQUIRED)

    law_overrides_objection = statutory is not None and statutory.mandatory
    if (facts.objection or facts.objection_signal) and not law_overrides_objection:
        return verdict(Outcome.ROUTE, Reason.OBJECTION)
    if facts.vulnerable and policy.route_vulnerable:
        return verdict(Outcome.ROUTE, Reason.VULNERABLE_SUBJECT)

    accepted = accepted_bases(profile)
    if law_overrides_objection and (facts.objection or facts.objection_signal):
        return verdict(
            Outcome.ALLOW, Reason.STATUTORY_BASIS, BasisKind.STATUTORY, _DISCLOSE_EXPLAIN
        )
    if facts.consent and BasisKind.CONSENT in accepted:
        return verdict(Outcome.ALLOW, Reason.CONSENT, BasisKind.CONSENT, _DISCLOSE_EXPLAIN)
    if statutory is not None and BasisKind.STATUTORY in accepted:
        return verdict(
            Outcome.ALLOW, Reason.STATUTORY_BASIS, BasisKind.STATUTORY, _DISCLOSE_EXPLAIN
        )
    if policy.contract_necessity and BasisKind.CONTRACT in accepted:
        return verdict(
            Outcome.ALLOW, Reason.CONTRACT_NECESSITY, BasisKind.CONTRACT, _DISCLOSE_EXPLAIN
        )
    if policy.fallback is Fallback.HUMAN:
        return verdict(Outcome.ROUTE, Reason.NO_LEGAL_BASIS)
    return verdict(Outcome.BLOCK, Reason.NO_LEGAL_BASIS)
