"""Where the subject of a decision comes from: a header, a path parameter, the user, a callable.

A resolver takes the ASGI scope and returns the subject identifier, or ``None`` when the request
does not name one. Resolvers are built once at start-up; at run time they only look things up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SubjectResolver", "from_header", "from_path_param", "from_user"]

SubjectResolver = Callable[[Mapping[str, Any]], str | None]
"""Takes the ASGI scope, returns the subject identifier or ``None``."""


class InvalidSubjectEncoding(ValueError):
    """The subject's bytes are not UTF-8."""


def from_header(name: str) -> SubjectResolver:
    """The subject is the value of the request header ``name`` (UTF-8).

    Only suitable where a trusted gateway sets the header; otherwise prefer :func:`from_user`.
    """
    wanted = name.lower().encode("latin-1")

    def resolve(scope: Mapping[str, Any]) -> str | None:
        for key, value in scope["headers"]:
            if key == wanted:
                try:
                    return bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidSubjectEncoding("the subject header is not UTF-8") from None
        return None

    return resolve


def from_path_param(name: str) -> SubjectResolver:
    """The subject is the path parameter ``name`` of the matched route."""

    def resolve(scope: Mapping[str, Any]) -> str | None:
        value = scope.get("path_params", {}).get(name)
        return None if value is None else str(value)

    return resolve


def from_user(attribute: str = "identity") -> SubjectResolver:
    """The subject is an attribute of the authenticated user (``scope["user"]``)."""

    def resolve(scope: Mapping[str, Any]) -> str | None:
        user = scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        value = getattr(user, attribute, None)
        return None if value is None else str(value)

    return resolve
