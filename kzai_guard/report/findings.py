"""The report's findings, each with the article of the law it concerns."""

from __future__ import annotations

from datetime import date

from kzai_guard.core.checks import findings as policy_findings
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.core.transfers import Destination, transfer_findings
from kzai_guard.core.vocabulary import Autonomy, RiskClass
from kzai_guard.report.figures import Figures
from kzai_guard.stores.base import RoutingState

__all__ = ["report_findings"]


def report_findings(
    policies: list[DecisionPolicy],
    figures: Figures,
    destinations: list[Destination],
    trail_ok: bool,
    today: date,
    routed: list[RoutingState] | None = None,
) -> list[tuple[str, str]]:
    """``(article, finding)`` pairs, policy by policy, then the period's, then transfers.

    ``routed`` are the policies whose AI decisions are routed to humans for disparity now."""
    out: list[tuple[str, str]] = []
    for policy in policies:
        for finding in policy_findings(policy, today):
            out.append(("KZ-AI 18" if "KZ-AI 18" in finding else "KZ-AI 21(4)", finding))
        if policy.autonomy is Autonomy.HIGH and policy.significance.is_significant:
            out.append(
                (
                    "KZ-AI 17(2)",
                    f"policy {policy.name!r}: high autonomy, so no human can correct or cancel "
                    "its significant decisions; consider medium autonomy with an override",
                )
            )
        if policy.risk is RiskClass.HIGH and policy.model is None:
            out.append(
                (
                    "Order 95/НҚ",
                    f"policy {policy.name!r}: a high-risk system whose model is not documented; "
                    "set 'model'",
                )
            )
    for row in figures.disparities:
        if row.disparity.flagged:
            d = row.disparity
            out.append(
                (
                    "KZ-AI 6",
                    f"policy {row.policy!r}: {row.ground}={d.group} is selected at "
                    f"{d.ratio:.2f} the rate of {row.ground}={d.reference} (p={d.p_value:.2g})",
                )
            )
    for routing in routed or ():
        out.append(
            (
                "KZ-AI 6",
                f"policy {routing.policy!r}: its AI decisions are routed to humans since "
                f"{routing.changed_at.date().isoformat()} ({routing.reason or 'no reason given'});"
                " clear it (Switches.clear_route) once the model and its data are checked",
            )
        )
    if figures.reviews.missed:
        out.append(
            (
                "KZ-PD 19-1",
                f"{figures.reviews.missed} human reviews missed their deadline",
            )
        )
    if figures.withheld:
        out.append(
            (
                "KZ-AI 16",
                f"{figures.withheld} decisions were withheld for lack of a complete explanation",
            )
        )
    if not trail_ok:
        out.append(("KZ-AI 18", "the audit trail did not verify; see its integrity section"))
    out.extend(transfer_findings(destinations))
    return out
