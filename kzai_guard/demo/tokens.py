"""The demo's sign-in: a token it signs for a person, checked by Starlette's authentication.

The bank's login (outside the demo) would issue :meth:`PersonTokens.issue` after checking the
person's credentials; every later request carries ``Authorization: Bearer <token>``.
:class:`PersonAuthentication` verifies the HMAC-SHA256 signature and puts the person on
``scope["user"]``, where ``kg.from_user()`` finds them. A request without a valid token is
answered 401 before any route runs: a header such as ``X-Subject-Id`` names nobody here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

__all__ = ["Person", "PersonAuthentication", "PersonTokens", "unauthenticated"]

PERSON_SCOPE = "person"
"""The auth scope of a signed-in person."""
OPEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
"""The API documentation: the only paths served without a token."""


class Person(BaseUser):
    """A person the demo's token authenticated."""

    def __init__(self, identity: str) -> None:
        self._identity = identity

    @property
    def is_authenticated(self) -> bool:
        """Always: only a verified token makes a :class:`Person`."""
        return True

    @property
    def display_name(self) -> str:
        """The identifier the token was issued for."""
        return self._identity

    @property
    def identity(self) -> str:
        """The identifier the token was issued for, which ``kg.from_user()`` reads."""
        return self._identity


class PersonTokens:
    """Issues and verifies ``<identity, base64url>.<HMAC-SHA256, base64url>`` tokens.

    The key is made at start-up (``os.urandom``) unless given, so tokens of an earlier run do
    not verify.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else os.urandom(32)
        if len(self._key) < 32:
            raise ValueError("the token key must be at least 32 bytes; use os.urandom(32)")

    def issue(self, identity: str) -> str:
        """A token that authenticates ``identity``."""
        raw = identity.encode("utf-8")
        return f"{_b64(raw)}.{_b64(self._sign(raw))}"

    def verify(self, token: str) -> str | None:
        """The identity ``token`` was issued for, or ``None`` for a forged or malformed one."""
        body, dot, signature = token.partition(".")
        if not dot:
            return None
        try:
            raw = _unb64(body)
            given = _unb64(signature)
            identity = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._sign(raw)):
            return None
        return identity

    def _sign(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()


class PersonAuthentication(AuthenticationBackend):
    """Starlette authentication backend: a valid bearer token, or 401."""

    def __init__(self, tokens: PersonTokens) -> None:
        self._tokens = tokens

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """The signed-in person; raises for a request that is not signed in."""
        if conn.url.path in OPEN_PATHS:
            return None
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        identity = self._tokens.verify(token) if scheme.lower() == "bearer" else None
        if identity is None:
            raise AuthenticationError("sign in first: a valid bearer token is required")
        return AuthCredentials([PERSON_SCOPE]), Person(identity)


def unauthenticated(conn: HTTPConnection, exc: AuthenticationError) -> JSONResponse:
    """The answer to a request without a valid token: 401, with a bearer challenge."""
    return JSONResponse(
        {"detail": str(exc)}, status_code=401, headers={"www-authenticate": "Bearer"}
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
