"""The pure ASGI middleware: one decision context per request, headers out, problems out.

- Opens a :class:`~kzai_guard.context.DecisionContext` for each HTTP request, so that
  ``@guard.decision`` functions and :func:`~kzai_guard.context.explain` find it.
- Adds the disclosure, decision-id and explanation-link headers of an allowed decision to the
  response as it starts; the body streams through untouched.
- Turns :class:`~kzai_guard.errors.DecisionRefused` and
  :class:`~kzai_guard.errors.AuditUnavailable` into RFC 9457 problem responses.
- For a plain ASGI app, serves the person's own routes under the guard's prefix
  (explanations, review tickets, objections; see :mod:`kzai_guard.http.routes`).
  ``guard.install(app)`` puts them in a Starlette or FastAPI router instead, behind the app's
  own middleware.

Other scopes pass straight through; at lifespan shutdown the guard is closed (final audit
checkpoint, explanations flushed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kzai_guard.context import DecisionContext, _current
from kzai_guard.core import problems
from kzai_guard.errors import AuditUnavailable, DecisionRefused, HumanReviewRequired
from kzai_guard.http.problem import PROBLEM_CONTENT_TYPE, problem_body
from kzai_guard.http.routes import PersonRoutes, route_path

if TYPE_CHECKING:
    from kzai_guard.guard import Guard

__all__ = ["GuardMiddleware"]

_FACTS_RETRY_AFTER = b"5"


class GuardMiddleware:
    """Install with ``guard.install(app)`` (or ``app.add_middleware(GuardMiddleware, guard=g)``)."""

    def __init__(self, app: ASGIApp, guard: Guard, person_routes: bool = True) -> None:
        self.app = app
        self.guard = guard
        self.problem_base = guard.settings.problem_base
        self.routes = PersonRoutes(guard) if person_routes else None
        self.prefix = guard.settings.routes_prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._closing_on_shutdown(send))
                return
            await self.app(scope, receive, send)
            return
        # the person's routes lie under the prefix, so their path holds it: most requests
        # are told apart by one substring test
        if (
            self.routes is not None
            and self.prefix in scope["path"]
            and route_path(scope).startswith(self.prefix)
        ):
            await self.routes(scope, receive, send)
            return

        context = DecisionContext(scope)
        token = _current.set(context)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = context.response_headers
                if extra:
                    message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except DecisionRefused as exc:
            if started:
                raise
            await self._refusal(exc, send)
        except AuditUnavailable:
            if started:
                raise
            await self._send_problem(
                send,
                problems.AUDIT_UNAVAILABLE,
                "The audit trail cannot record decisions right now, so none are made. "
                "Try again later.",
                decision_id=context.decision_id,
                extra_headers=[(b"retry-after", b"30")]
                + (
                    [(b"ai-decision-id", context.decision_id.encode())]
                    if context.decision_id
                    else []
                ),
            )
        finally:
            _current.reset(token)

    def _closing_on_shutdown(self, send: Send) -> Send:
        """Close the guard (final checkpoint, flushed explanations) as the server shuts down."""

        async def send_after_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await anyio.to_thread.run_sync(self.guard.close)
            await send(message)

        return send_after_closing

    async def _refusal(self, exc: DecisionRefused, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = []
        extensions: dict[str, object] = {}
        if isinstance(exc, HumanReviewRequired):
            ticket = exc.ticket
            location = f"{self.guard.settings.routes_prefix}/reviews/{ticket.id}"
            headers.append((b"location", location.encode()))
            extensions = {
                "review_id": ticket.id,
                "review": {
                    "id": ticket.id,
                    "status": ticket.status.value,
                    "reason": ticket.reason,
                    "deadline": ticket.deadline.isoformat(),
                    "href": location,
                },
            }
        elif exc.problem is problems.FACTS_UNAVAILABLE:
            headers.append((b"retry-after", _FACTS_RETRY_AFTER))
        if exc.decision_id is not None:
            headers.append((b"ai-decision-id", exc.decision_id.encode()))
        await self._send_problem(
            send,
            exc.problem,
            exc.detail,
            decision_id=exc.decision_id,
            extra_headers=headers,
            **extensions,
        )

    async def _send_problem(
        self,
        send: Send,
        problem: problems.ProblemType,
        detail: str,
        *,
        decision_id: str | None,
        extra_headers: list[tuple[bytes, bytes]],
        **extensions: object,
    ) -> None:
        body = problem_body(
            self.problem_base, problem, detail, decision_id=decision_id, **extensions
        )
        await send(
            {
                "type": "http.response.start",
                "status": problem.status,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    *extra_headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
