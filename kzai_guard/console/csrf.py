"""CSRF protection for the console's forms: a token bound to the browser and the reviewer.

A random nonce lives in a ``SameSite=Strict``, ``HttpOnly`` cookie; each form carries
``HMAC-SHA256(key, nonce || reviewer id)``. A cross-site page can neither read the cookie nor
compute the token, and a token made for one reviewer or browser is worthless for another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["CSRF_COOKIE", "CsrfTokens"]

CSRF_COOKIE = "kzg_csrf"


class CsrfTokens:
    """Makes and checks form tokens with one secret key (kept in the guard's store)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the CSRF key must be at least 32 bytes")
        self._key = key

    @staticmethod
    def new_nonce() -> str:
        """A fresh cookie value."""
        return secrets.token_urlsafe(32)

    def token(self, nonce: str, reviewer_id: str) -> str:
        """The form token for this browser's ``nonce`` and this reviewer."""
        message = nonce.encode("utf-8") + b"\0" + reviewer_id.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def valid(self, nonce: str | None, reviewer_id: str, token: str | None) -> bool:
        """True when ``token`` is the one made for ``nonce`` and ``reviewer_id``."""
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.token(nonce, reviewer_id), token)
