"""Where the subject of a decision comes from: a header, a path parameter, the user, a callable.

A resolver takes the ASGI scope and returns the subject identifier, or ``None`` when the request
does not name one. Resolvers are built once at start-up; at run time they only look things up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kzai_guard.errors import ConfigurationError

__all__ = [
    "InvalidSubjectEncoding",
    "RepeatedSubjectHeader",
    "SubjectResolver",
    "UnusableSubject",
    "from_header",
    "from_path_param",
    "from_user",
]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""A header name: one or more token characters (RFC 9110, section 5.1), ASCII only."""

SubjectResolver = Callable[[Mapping[str, Any]], str | None]
"""Takes the ASGI scope, returns the subject identifier or ``None``."""


class UnusableSubject(ValueError):
    """The request names its subject in a form the guard cannot take: the decision is refused
    (``subject-invalid``) rather than made about a guess."""


class InvalidSubjectEncoding(UnusableSubject):
    """The subject's bytes are not UTF-8."""


class RepeatedSubjectHeader(UnusableSubject):
    """The subject header came more than once.

    It names one person, so a second copy is either a client's attempt to add its own beside
    the gateway's or a gateway that appends instead of replacing; neither can be trusted.
    """


def from_header(name: str) -> SubjectResolver:
    """The subject is the value of the request header ``name`` (UTF-8).

    Only suitable where a trusted gateway sets the header; otherwise prefer :func:`from_user`.
    A header that is not UTF-8 (:class:`InvalidSubjectEncoding`) or comes more than once
    (:class:`RepeatedSubjectHeader`) names no usable subject. A ``name`` that is not a header
    name (ASCII token characters, such as ``X-Subject-Id``) raises :class:`ConfigurationError`.
    """
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        raise ConfigurationError(
            f"the subject header name {name!r} is not a header name: use ASCII letters, digits "
            "and -, such as X-Subject-Id"
        )
    wanted = name.lower().encode("ascii")

    def resolve(scope: Mapping[str, Any]) -> str | None:
        found = None
        for key, value in scope["headers"]:
            if key == wanted:
                if found is not None:
                    raise RepeatedSubjectHeader(f"the {name} header came more than once")
                found = value
        if found is None:
            return None
        try:
            return bytes(found).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSubjectEncoding("the subject header is not UTF-8") from None

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
