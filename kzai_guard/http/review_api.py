"""The reviewer's HTTP API, served under the guard's ``reviews_prefix`` (default ``/ai-reviews``).

- ``GET {prefix}/queue[?status=open|completed|all&policy=&due=overdue&due_before=&page=&per_page=]``
- ``GET {prefix}/tickets/{review_id}``: the case (an audit record says who looked)
- ``POST {prefix}/tickets/{review_id}/claim``: take it for the lease time; 409 if someone has it
- ``POST {prefix}/tickets/{review_id}/release``
- ``POST {prefix}/tickets/{review_id}/decision`` ``{"outcome": "approved", "reason": "..."}``
- ``POST {prefix}/tickets/{review_id}/escalation`` ``{"reason": "..."}``
- ``POST {prefix}/decisions/{decision_id}/override`` ``{"action": "correct|cancel", "reason"}``

The reviewer comes from the guard's reviewer resolver (the app's authentication), never from a
header: nobody signed in gets 401, a signed-in user who is not a reviewer 403. POSTs must be
``application/json`` (a cross-site form cannot send that without the browser asking first).
``{prefix}/console/`` is the HTML console (:mod:`kzai_guard.console`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio.to_thread
import orjson

from kzai_guard.core import problems
from kzai_guard.core.oversight import ConflictReason
from kzai_guard.core.problems import ProblemType
from kzai_guard.core.review import Reviewer, ReviewStatus
from kzai_guard.errors import OverrideForbidden, ReviewConflict, UnknownRecord
from kzai_guard.http.problem import PROBLEM_CONTENT_TYPE, as_sentence, problem_body
from kzai_guard.http.routes import PersonRoute, _Disconnected, _read_body, _send, route_path
from kzai_guard.oversight import MAX_PER_PAGE, override_json, ticket_json

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from kzai_guard.guard import Guard

__all__ = [
    "ACTIONS",
    "ReviewRoute",
    "ReviewRoutes",
    "challenge",
    "queue_options",
    "refusal_of",
    "reviewer_or_refusal",
]

MAX_FORM_BODY = 64 * 1024
_JSON = b"application/json"
_FIELDS = {
    "decision": frozenset({"outcome", "reason"}),
    "escalation": frozenset({"reason"}),
    "override": frozenset({"action", "reason"}),
}


class ReviewRoutes:
    """An ASGI app for the routes above (and the console, when mounted)."""

    def __init__(self, guard: Guard, console: Any = None) -> None:
        self.guard = guard
        self.prefix = (guard.settings.reviews_prefix or "") + "/"
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = route_path(scope)[len(self.prefix) :].split("/")
        if parts[0] == "console" and self.console is not None:
            await self.console(scope, receive, send, parts[1:])
            return
        reviewer = reviewer_or_refusal(self.guard, scope)
        if not isinstance(reviewer, Reviewer):
            await self._problem(send, *reviewer)
            return
        method = scope["method"]
        if parts == ["queue"] and method == "GET":
            await self._queue(scope, send)
        elif len(parts) == 2 and parts[0] == "tickets" and method == "GET":
            await self._run(send, 200, lambda: self.guard.oversight.case(parts[1], reviewer))
        elif len(parts) == 3 and parts[0] in ("tickets", "decisions") and method == "POST":
            await self._action(scope, receive, send, reviewer, parts[0], parts[1], parts[2])
        else:
            await self._problem(send, problems.NOT_FOUND, "There is nothing at this address.")

    async def _queue(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            options = queue_options(query)
        except ValueError as exc:
            await self._problem(send, problems.BAD_REQUEST, as_sentence(str(exc)))
            return
        now = self.guard.now()

        def page() -> dict[str, Any]:
            found = self.guard.oversight.queue(**options)
            return {
                "items": [
                    {**ticket_json(e.ticket, now), "claimed_by": e.holder} for e in found.entries
                ],
                "page": found.page,
                "per_page": found.per_page,
                "next_page": found.page + 1 if found.has_more else None,
            }

        await self._run(send, 200, page)

    async def _action(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        reviewer: Reviewer,
        kind: str,
        target: str,
        action: str,
    ) -> None:
        run = ACTIONS.get((kind, action))
        if run is None:
            await self._problem(send, problems.NOT_FOUND, "There is nothing at this address.")
            return
        if _content_type(scope) != "application/json":
            await self._problem(
                send, problems.JSON_REQUIRED, "Send the body as application/json ({} if empty)."
            )
            return
        try:
            body = await _read_body(receive, MAX_FORM_BODY)
        except _Disconnected:
            return
        fields = _json_fields(body, _FIELDS.get(action, frozenset()))
        if isinstance(fields, str):
            await self._problem(send, problems.BAD_REQUEST, fields)
            return
        await self._run(send, 200, lambda: run(self.guard, target, reviewer, fields))

    async def _run(self, send: Send, status: int, work: Callable[[], Any]) -> None:
        try:
            result = await anyio.to_thread.run_sync(work)
        except (ReviewConflict, UnknownRecord, OverrideForbidden, ValueError) as exc:
            await self._problem(send, *refusal_of(exc))
            return
        await _send(send, status, _JSON, orjson.dumps(result))

    async def _problem(self, send: Send, problem: ProblemType, detail: str) -> None:
        body = problem_body(self.guard.settings.problem_base, problem, detail)
        await _send(
            send, problem.status, PROBLEM_CONTENT_TYPE, body, challenge(self.guard, problem)
        )


class ReviewRoute(PersonRoute):
    """The router entry of :class:`ReviewRoutes`: every HTTP path under ``reviews_prefix``,
    first in the app's router like the person's routes (behind the app's authentication)."""

    def __init__(self, guard: Guard, console: Any = None) -> None:
        self.app = ReviewRoutes(guard, console)  # type: ignore[assignment]
        self.prefix = self.app.prefix


def reviewer_or_refusal(guard: Guard, scope: Scope) -> Reviewer | tuple[ProblemType, str]:
    """The authenticated reviewer, or the problem to answer with (401 or 403)."""
    reviewer = guard.reviewer_resolver(scope)
    if reviewer is not None and reviewer.id:
        return reviewer
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return problems.REVIEWER_REQUIRED, "Sign in through the service's authentication."
    return problems.REVIEWER_FORBIDDEN, "Your account is not allowed to review decisions."


def challenge(guard: Guard, problem: ProblemType) -> list[tuple[bytes, bytes]]:
    """The ``WWW-Authenticate`` header a 401 answer must carry (RFC 9110 15.5.2), else none."""
    if problem.status != 401:
        return []
    return [(b"www-authenticate", guard.settings.reviewer_challenge.encode("ascii"))]


def refusal_of(exc: Exception) -> tuple[ProblemType, str]:
    """The problem for what a reviewer's action raised."""
    if isinstance(exc, ReviewConflict):
        problem = {
            ConflictReason.CLAIMED: problems.CLAIM_CONFLICT,
            ConflictReason.NOT_CLAIMED: problems.CLAIM_REQUIRED,
            ConflictReason.CLOSED: problems.REVIEW_CLOSED,
        }[exc.reason]
        return problem, as_sentence(str(exc))
    if isinstance(exc, UnknownRecord):
        return problems.NOT_FOUND, as_sentence(str(exc))
    if isinstance(exc, OverrideForbidden):
        return problems.OVERRIDE_FORBIDDEN, as_sentence(str(exc))
    return problems.BAD_REQUEST, as_sentence(str(exc))


def queue_options(query: dict[str, list[str]]) -> dict[str, Any]:
    """``guard.oversight.queue`` keyword arguments from a query string (``ValueError`` if bad)."""
    status = query.get("status", ["open"])[0]
    if status not in ("open", "completed", "all"):
        raise ValueError("status must be open, completed or all")
    due = query.get("due", [None])[0]
    if due not in (None, "", "overdue"):
        raise ValueError("due must be overdue when given")
    before = query.get("due_before", [None])[0]
    try:
        due_before = datetime.fromisoformat(before) if before else None
        page = int(query.get("page", ["1"])[0])
        per_page = int(query.get("per_page", ["25"])[0])
    except ValueError:
        raise ValueError(
            f"due_before must be an ISO 8601 time with its offset, page and per_page "
            f"whole numbers (per_page 1 to {MAX_PER_PAGE})"
        ) from None
    if due_before is not None and due_before.tzinfo is None:
        raise ValueError("due_before must carry a UTC offset")
    return {
        "status": None if status == "all" else ReviewStatus(status),
        "policy": query.get("policy", [None])[0] or None,
        "overdue": due == "overdue",
        "due_before": due_before,
        "page": page,
        "per_page": per_page,
    }


def _claim(guard: Guard, target: str, reviewer: Reviewer, fields: dict[str, str]) -> Any:
    work = guard.oversight.claim(target, reviewer)
    lease = work.lease_until.isoformat() if work.lease_until else None
    return {"id": target, "claimed_by": work.claimed_by, "lease_until": lease}


def _release(guard: Guard, target: str, reviewer: Reviewer, fields: dict[str, str]) -> Any:
    guard.oversight.release(target, reviewer)
    return {"id": target, "claimed_by": None}


def _decide(guard: Guard, target: str, reviewer: Reviewer, fields: dict[str, str]) -> Any:
    outcome = fields.get("outcome")
    if outcome not in ("approved", "rejected", "amended"):
        raise ValueError("outcome must be approved, rejected or amended")
    ticket = guard.oversight.decide(target, reviewer, outcome, fields.get("reason") or None)
    return ticket_json(ticket, guard.now())


def _escalate(guard: Guard, target: str, reviewer: Reviewer, fields: dict[str, str]) -> Any:
    reason = fields.get("reason")
    if not reason:
        raise ValueError("an escalation needs a reason")
    work = guard.oversight.escalate(target, reviewer, reason)
    return {"id": target, "escalated_by": work.escalated_by, "reason": work.escalation_reason}


def _override(guard: Guard, target: str, reviewer: Reviewer, fields: dict[str, str]) -> Any:
    action = fields.get("action")
    if action not in ("correct", "cancel"):
        raise ValueError("action must be correct or cancel")
    done = guard.oversight.override(target, reviewer, action, fields.get("reason") or None)
    return {"decision_id": target, **override_json(done)}


ACTIONS: dict[tuple[str, str], Callable[[Guard, str, Reviewer, dict[str, str]], Any]] = {
    ("tickets", "claim"): _claim,
    ("tickets", "release"): _release,
    ("tickets", "decision"): _decide,
    ("tickets", "escalation"): _escalate,
    ("decisions", "override"): _override,
}
"""Every reviewer action by (what it acts on, its name); the console posts to the same ones."""


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return str(value.decode("latin-1").split(";")[0].strip().lower())
    return ""


def _json_fields(body: bytes | None, allowed: frozenset[str]) -> dict[str, str] | str:
    """The body's string members, or a sentence saying what is wrong with it."""
    if body is None:
        return f"The body is larger than {MAX_FORM_BODY // 1024} KiB."
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return "The body is not JSON."
    if (
        not isinstance(data, dict)
        or not data.keys() <= allowed
        or not all(isinstance(v, str) for v in data.values())
    ):
        names = ", ".join(sorted(allowed)) or "no members"
        return f"The body must be a JSON object of strings with {names}."
    return data
