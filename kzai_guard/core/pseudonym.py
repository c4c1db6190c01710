"""Keyed pseudonyms: how a subject appears anywhere outside the store.

``HMAC-SHA-256(key, subject)``, the first 128 bits in hex. Without the key a pseudonym cannot be
linked back to the subject, and it is stable as long as the key is, so records about one person
can still be correlated by whoever holds the key.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MIN_KEY_BYTES", "Pseudonymizer"]

MIN_KEY_BYTES = 32
_CACHE_LIMIT = 65_536


class Pseudonymizer:
    """Maps subject identifiers to pseudonyms with one secret key; memoises recent subjects."""

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._cache: dict[str, str] = {}

    def __call__(self, subject: str) -> str:
        """The pseudonym of ``subject``."""
        cached = self._cache.get(subject)
        if cached is not None:
            return cached
        value = hmac.new(self._key, subject.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[subject] = value
        return value
