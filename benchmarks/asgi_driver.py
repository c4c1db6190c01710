"""A minimal in-process ASGI driver: scope, receive and send built by hand, no HTTP client.

What it costs per request (a dict copy, two tiny coroutines) is the same for the bare and the
guarded app, so the difference between them is the guard alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestFailed(RuntimeError):
    """The app answered with a status other than the one expected."""


def http_scope(path: str, headers: dict[str, str], method: str = "GET") -> dict[str, Any]:
    """An HTTP scope template; the driver copies it for every request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


class Driver:
    """Calls one ASGI app with one request template, again and again."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], expect_status: int = 200) -> None:
        self._app = app
        self._scope = scope
        self._expect = expect_status
        self._request: Message = {"type": "http.request", "body": b"", "more_body": False}
        self.last_status = 0
        self.last_body = b""
        self.last_headers: list[tuple[bytes, bytes]] = []

    async def _receive(self) -> Message:
        return self._request

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.last_status = message["status"]
            self.last_headers = list(message.get("headers", []))
            self.last_body = b""
        elif kind == "http.response.body":
            self.last_body += message.get("body", b"")

    async def call(self) -> int:
        """One request; returns the status."""
        await self._app(dict(self._scope), self._receive, self._send)
        return self.last_status

    async def run(self, n: int) -> None:
        """``n`` requests back to back."""
        app, scope, receive, send = self._app, self._scope, self._receive, self._send
        for _ in range(n):
            await app(dict(scope), receive, send)
        if self.last_status != self._expect:
            raise RequestFailed(
                f"expected status {self._expect}, got {self.last_status}: {self.last_body[:300]!r}"
            )

    async def check(self) -> None:
        """One request that must answer with the expected status."""
        status = await self.call()
        if status != self._expect:
            raise RequestFailed(
                f"expected status {self._expect}, got {status}: {self.last_body[:300]!r}"
            )


async def lifespan_startup(app: ASGIApp) -> Callable[[], Awaitable[None]]:
    """Run the app's lifespan start-up; returns a coroutine function that shuts it down."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        await outbox.put(message)

    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), 30)
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan start-up failed: {started}")

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(outbox.get(), 30)
        await task

    return shutdown
