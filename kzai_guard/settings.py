"""Guard-wide settings (data only, validated at start-up)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kzai_guard.core.problems import DEFAULT_PROBLEM_BASE
from kzai_guard.core.profiles import Profile

__all__ = ["GuardSettings"]


class GuardSettings(BaseModel):
    """What a guard needs to know besides its policies.

    ``how_to_object``, ``human_contact`` and ``contact`` fill explanations that leave them out.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: Profile = Profile.KZ
    routes_prefix: str = Field(default="/ai-decisions", pattern=r"^/[A-Za-z0-9._~/-]*[^/]$")
    problem_base: str = Field(default=DEFAULT_PROBLEM_BASE, min_length=1)
    objection_header_name: str = Field(default="AI-Objection", pattern=r"^[A-Za-z0-9-]+$")
    review_deadline_days: int = Field(default=3, ge=1, le=90)
    how_to_object: str | None = Field(
        default=(
            "You may object to this automated decision and ask for a person to decide: "
            "POST {prefix}/objections, or reply through the contact given."
        )
    )
    human_contact: str | None = "Ask for a human review through the contact given."
    contact: str | None = None
    reviews_prefix: str | None = Field(default="/ai-reviews", pattern=r"^/[A-Za-z0-9._~/-]*[^/]$")
    """Where ``guard.install`` mounts the reviewer's API and console; ``None``: not mounted."""
    review_console: bool | None = None
    """The reviewer's HTML console (extra ``console``): ``None`` mounts it when Jinja2 is
    installed, ``True`` requires it, ``False`` leaves it out."""
    review_lease_minutes: int = Field(default=30, ge=1, le=480)
    """How long a reviewer's claim on a ticket keeps others off it."""
    reviewer_subject_role: str = Field(default="ai-reviewer:subject", min_length=1)
    """The reviewer role (auth scope) that sees the person's identifier in a case; others see
    its pseudonym."""
    poll_interval: float = Field(default=0.25, gt=0, le=1.0)
    stale_after: float = Field(default=5.0, gt=0, le=300.0)
    """Seconds the cached facts are trusted after the store's change feed was last read; beyond
    that, significant decisions are refused (``facts-unavailable``)."""
    cache_limit: int = Field(default=100_000, ge=100)

    @model_validator(mode="after")
    def _separate_prefixes(self) -> GuardSettings:
        reviews = self.reviews_prefix
        person = self.routes_prefix
        if reviews is not None and (
            (reviews + "/").startswith(person + "/") or (person + "/").startswith(reviews + "/")
        ):
            raise ValueError(
                f"reviews_prefix {reviews!r} and routes_prefix {person!r} overlap; give the "
                "reviewer's routes and the person's routes separate prefixes"
            )
        return self

    @model_validator(mode="after")
    def _stale_after_exceeds_poll_interval(self) -> GuardSettings:
        if self.stale_after <= self.poll_interval:
            raise ValueError(
                f"stale_after ({self.stale_after}s) must be longer than poll_interval "
                f"({self.poll_interval}s), or facts go stale between two polls; raise "
                "stale_after (a few seconds)"
            )
        return self

    @property
    def objection_header(self) -> bytes:
        """The objection header's name as it appears in an ASGI scope."""
        return self.objection_header_name.lower().encode("ascii")
