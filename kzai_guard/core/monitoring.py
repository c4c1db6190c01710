"""What a policy says about disparity monitoring (KZ-AI 6), and the start-up check it brings.

A policy with ``monitoring`` has the outcomes of its decisions counted per group of each ground
it names (see :mod:`kzai_guard.core.disparity` for the statistics); a policy that lists one of
its protected attributes among its ``inputs`` does not start.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kzai_guard.core.disparity import Thresholds
from kzai_guard.core.vocabulary import DisparityAction, ProtectedGround

__all__ = ["DisparityMonitoring", "protected_inputs"]


class DisparityMonitoring(BaseModel):
    """Run-time disparity monitoring of one policy.

    Example::

        DisparityMonitoring(
            grounds={ProtectedGround.SEX, ProtectedGround.AGE_BAND},
            action=DisparityAction.SUSPEND,
            protected_attributes={"gender", "birth_date"},
        )

    ``protected_attributes`` names the data fields that carry a protected ground (besides the
    grounds' own names); none of them may be among the policy's ``inputs``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    grounds: frozenset[ProtectedGround] = Field(min_length=1)
    action: DisparityAction = DisparityAction.ALERT
    min_sample: int = Field(default=30, ge=5, description="Decisions per group before judging.")
    ratio_below: float = Field(
        default=0.8, gt=0.0, le=1.0, description="Adverse when a group's rate ratio is below."
    )
    difference_above: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Also adverse when the difference is above."
    )
    alpha: float = Field(default=0.05, gt=0.0, le=0.2, description="The test's level.")
    window_days: int = Field(default=30, ge=1, le=366, description="Days of outcomes judged.")
    protected_attributes: frozenset[str] = frozenset()

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds the statistics apply."""
        return Thresholds(self.ratio_below, self.difference_above, self.alpha, self.min_sample)


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def protected_inputs(inputs: frozenset[str], monitoring: DisparityMonitoring | None) -> list[str]:
    """The ``inputs`` that are protected attributes declared by ``monitoring`` (sorted).

    The declared attributes are the monitored grounds' names and ``protected_attributes``;
    names compare without regard to case, ``_``, ``-`` or spaces.
    """
    if monitoring is None:
        return []
    declared = {_normal(g.value) for g in monitoring.grounds}
    declared |= {_normal(a) for a in monitoring.protected_attributes}
    return sorted(i for i in inputs if _normal(i) in declared)
