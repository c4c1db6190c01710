"""One raw ASGI request, so that headers and bodies can carry any bytes (no client-side checks)."""

from __future__ import annotations

from typing import Any


async def raw_request(
    app: Any,
    path: str,
    headers: list[tuple[bytes, bytes]],
    *,
    method: str = "POST",
    query: bytes = b"",
    body: bytes = b"",
    messages: list[dict[str, Any]] | None = None,
) -> tuple[int | None, dict[bytes, bytes], bytes]:
    """Status (``None`` if no response started), headers and body of one request.

    ``messages`` are what ``receive`` hands out in turn; by default one ``http.request`` with
    ``body``.
    """
    inbox = list(messages or [{"type": "http.request", "body": body, "more_body": False}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    await app(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if start is None:
        return None, {}, content
    return start["status"], dict(start["headers"]), content
