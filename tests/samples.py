"""The loan decision and the explanation that many tests share."""

from __future__ import annotations

import kzai_guard as kg

LOAN = kg.DecisionPolicy(
    name="loan_approval",
    purpose="credit-scoring",
    significance=kg.Significance.LEGAL_EFFECT,
    autonomy=kg.Autonomy.HIGH,
    risk=kg.RiskClass.HIGH,
    model=kg.ModelInfo(name="scorer", version="2.1"),
)
"""A significant, high-autonomy credit decision that relies on consent."""

EXPLANATION = kg.Explanation(
    summary={kg.Language.EN: "Approved"},
    factors=(kg.Factor(name="income", direction=kg.Direction.FAVOURABLE, weight=0.6),),
    ai_role="A model computed the score.",
    consequences="The loan is granted.",
)
"""A complete explanation for :data:`LOAN` (with the guard's defaults)."""

GATEWAY_SUBJECT = kg.from_header("X-Subject-Id")
"""The subject as a gateway sets it after stripping any copy a client sent: the header the
tests send on their requests."""
