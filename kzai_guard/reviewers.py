"""Who the human decision-maker is: from the app's authentication, never from a client header."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kzai_guard.core.review import Reviewer

__all__ = ["DEFAULT_REVIEWER_SCOPE", "ReviewerResolver", "needs_user", "reviewer_from_auth"]

DEFAULT_REVIEWER_SCOPE = "ai-reviewer"

ReviewerResolver = Callable[[Mapping[str, Any]], Reviewer | None]
"""Takes the ASGI scope, returns the authenticated reviewer or ``None``."""


def reviewer_from_auth(required_scope: str = DEFAULT_REVIEWER_SCOPE) -> ReviewerResolver:
    """The reviewer is ``scope["user"]`` when authenticated and granted ``required_scope``.

    This reads what Starlette's ``AuthenticationMiddleware`` (or any middleware that sets
    ``scope["user"]`` and ``scope["auth"]``) established; headers play no part. The auth scopes
    become the reviewer's ``roles``.
    """

    def resolve(scope: Mapping[str, Any]) -> Reviewer | None:
        user = scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        scopes = getattr(scope.get("auth"), "scopes", ())
        if required_scope not in scopes:
            return None
        identity = getattr(user, "identity", None) or getattr(user, "display_name", None)
        if not identity:
            return None
        return Reviewer(
            id=str(identity),
            display_name=getattr(user, "display_name", None),
            roles=frozenset(str(s) for s in scopes),
        )

    resolve.needs_user = True  # type: ignore[attr-defined]
    return resolve


def needs_user(resolver: ReviewerResolver) -> bool:
    """True when ``resolver`` names no reviewer in a scope without a ``user`` (as
    :func:`reviewer_from_auth`'s do), so that a request without one need not ask it."""
    return getattr(resolver, "needs_user", False) is True
