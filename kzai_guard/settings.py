"""Guard-wide settings (data only, validated at start-up)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

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
    reviewer_challenge: str = Field(
        default='Bearer realm="ai-reviews"', min_length=1, pattern=r"^[\x20-\x7e]+$"
    )
    """The ``WWW-Authenticate`` challenge of the reviewer API's 401 answers: name the scheme
    the app's authentication takes (RFC 9110 11.6.1)."""
    deadline_warning_days: int = Field(default=1, ge=0, le=30)
    """A ticket is due soon once its deadline is no later than the end of this many working
    days after today (0: due today)."""
    deadline_check_seconds: float | None = Field(default=60.0, ge=0.0, le=86_400.0)
    """How often the service looks for tickets due soon or overdue and sends due webhook
    notifications (1 second or more); ``None`` or 0: never (use ``kzai-guard reviews
    overdue`` or ``guard.deadlines.sweep()``)."""
    deadline_webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    """Where deadline findings are posted (JSON, signed with ``deadline_webhook_secret``)."""
    deadline_webhook_secret: SecretStr | None = None
    """The webhook's shared secret: ``whsec_`` and Base64, or text; at least 24 bytes."""
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
    def _deadline_settings_fit(self) -> GuardSettings:
        from kzai_guard.webhook_signature import MIN_SECRET_BYTES, secret_bytes

        interval = self.deadline_check_seconds
        if interval is not None and 0 < interval < 1:
            raise ValueError(
                "deadline_check_seconds must be 1 or more (or 0 for never): a look reads every "
                "open ticket"
            )
        url, secret = self.deadline_webhook_url, self.deadline_webhook_secret
        if (url is None) != (secret is None):
            raise ValueError(
                "deadline_webhook_url and deadline_webhook_secret go together: the receiver "
                "checks every notification's signature with the secret"
            )
        if secret is not None and len(secret_bytes(secret.get_secret_value())) < MIN_SECRET_BYTES:
            raise ValueError(
                f"deadline_webhook_secret must be at least {MIN_SECRET_BYTES} bytes; make one "
                "with: python -c \"import base64, os; print('whsec_' + "
                'base64.b64encode(os.urandom(32)).decode())"'
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
