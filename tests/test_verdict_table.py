"""The gate's verdict table: each bit mask of facts indexes the verdict the rules give them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.core.facts import Facts
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.profiles import Profile
from kzai_guard.core.rules import evaluate
from kzai_guard.gate import verdict_table
from tests.core.test_rules import facts, policies

BITS = ("suspended", "reviewer", "consent", "objection", "objection_signal", "vulnerable", "routed")
"""The facts in the order of their bits, as the gate builds the mask."""


@given(policies(), facts, st.sampled_from(Profile))
def test_the_mask_of_the_facts_indexes_their_verdict(
    policy: DecisionPolicy, f: Facts, profile: Profile
) -> None:
    table = verdict_table(policy, profile)
    mask = sum(getattr(f, name) << bit for bit, name in enumerate(BITS))
    assert len(table) == 2 ** len(BITS) == 2 ** len(Facts.__slots__)
    assert table[mask] == evaluate(policy, f, profile)
