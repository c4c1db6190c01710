"""Helpers for testing services that use kzai_guard.

- :func:`memory_guard`: a guard on an in-memory store with a :class:`~kzai_guard.MemorySink`,
  so a test can read every audit record.
- :class:`StaticAuthentication`: an ASGI middleware that authenticates every request as one
  fixed user, standing in for the app's real authentication when testing human review.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from starlette.authentication import AuthCredentials, SimpleUser
from starlette.types import ASGIApp, Receive, Scope, Send

from kzai_guard.audit.sink import MemorySink
from kzai_guard.core.policy import DecisionPolicy
from kzai_guard.guard import Guard

__all__ = ["StaticAuthentication", "memory_guard"]


def memory_guard(policies: Sequence[DecisionPolicy], **options: Any) -> tuple[Guard, MemorySink]:
    """A guard on ``memory://`` whose audit records land in the returned :class:`MemorySink`."""
    sink = MemorySink()
    options.setdefault("store", "memory://")
    options.setdefault("pseudonym_key", b"kzai-guard-test-pseudonym-key-32b")
    return Guard(policies, audit=sink, **options), sink


class StaticAuthentication:
    """Authenticates every request as ``username`` with ``scopes`` (tests only)."""

    def __init__(self, app: ASGIApp, username: str, scopes: Iterable[str] = ()) -> None:
        self.app = app
        self.user = SimpleUser(username)
        self.credentials = AuthCredentials(list(scopes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["user"] = self.user
            scope["auth"] = self.credentials
        await self.app(scope, receive, send)
