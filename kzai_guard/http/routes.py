"""The person's own routes, served by the middleware under the guard's prefix.

- ``GET {prefix}/{decision_id}/explanation[?lang=kk|ru|en]``: the explanation of a decision
  (KZ-AI 16(1)(4)), to the person it is about only, with ``human_overrides``: a human's
  corrections or cancellations of it.
- ``GET {prefix}/{decision_id}/receipt``: the decision's receipt, a C2SP ``tlog-proof`` that
  the person can check offline with the log's public key (and the witnesses'), when the guard
  writes a signed file log; ``receipt-pending`` (503) until a checkpoint covers the decision.
- ``GET {prefix}/{decision_id}/data``: the data the decision rested on (KZ-AI 16(1)(5), GDPR 15),
  to the person it is about only, with the policy's redaction applied: a withheld input (trade
  secret, other people's data) is listed with the reason, never its value.
- ``GET {prefix}/reviews/{review_id}``: where a review ticket stands, to its person only;
  once its deadline has passed unanswered, ``overdue`` is true and ``overdue_detail`` says so
  in a sentence; once decided, its ``outcome`` and the reviewer's ``outcome_reason``.
- ``POST {prefix}/objections`` (``{"policy": "..."}`` optional): object to automated decisions.
- ``DELETE {prefix}/objections[?policy=...]``: withdraw that objection.

The person is found with the guard's person resolver (by default its subject resolver);
someone else's decision answers 404, so that nobody learns which decision ids exist. While the
store cannot be read or written, every route answers 503 ``facts-unavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio.to_thread
import orjson
from starlette.routing import BaseRoute, Match, NoMatchFound

from kzai_guard.audit.receipt import make_receipt
from kzai_guard.core import problems
from kzai_guard.core.explanation import localise, with_defaults
from kzai_guard.core.problems import ProblemType
from kzai_guard.core.review import ReviewTicket, is_overdue
from kzai_guard.core.subject import check_subject
from kzai_guard.data_bases import shown_to_person
from kzai_guard.errors import AuditLogError, StoreError, UnknownRecord
from kzai_guard.http.problem import PROBLEM_CONTENT_TYPE, as_sentence, problem_body
from kzai_guard.subjects import UnusableSubject

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from kzai_guard.guard import Guard

__all__ = ["PersonRoute", "PersonRoutes", "overdue_detail", "route_path"]

_MAX_BODY = 4096
_OBJECTION_FIELDS = frozenset({"policy"})
_JSON = b"application/json"
_TLOG_PROOF = b"text/plain; charset=utf-8"
_log = logging.getLogger("kzai_guard")


class PersonRoutes:
    """An ASGI app for the routes above."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.prefix = guard.settings.routes_prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = route_path(scope)[len(self.prefix) :].split("/")
        method = scope["method"]
        subject = self._subject(scope)
        if isinstance(subject, tuple):
            await self._problem(send, *subject)
            return
        try:
            if len(parts) == 2 and parts[1] == "explanation" and method == "GET":
                await self._explanation(scope, send, subject, parts[0])
            elif len(parts) == 2 and parts[1] == "receipt" and method == "GET":
                await self._receipt(send, subject, parts[0])
            elif len(parts) == 2 and parts[0] == "reviews" and method == "GET":
                await self._review(send, subject, parts[1])
            elif len(parts) == 2 and parts[1] == "data" and method == "GET":
                await self._data_basis(send, subject, parts[0])
            elif parts == ["objections"] and method in ("POST", "DELETE"):
                await self._objection(scope, receive, send, subject)
            else:
                await self._problem(send, problems.NOT_FOUND, "There is nothing at this address.")
        except StoreError:
            # Every handler answers only after its store call, so nothing was sent yet.
            _log.warning("kzai_guard: a person's request failed on the store", exc_info=True)
            await self._problem(
                send,
                problems.FACTS_UNAVAILABLE,
                "The person's records cannot be read or written just now; try again in a moment.",
            )

    def _subject(self, scope: Scope) -> str | tuple[ProblemType, str]:
        try:
            raw = self.guard.person_resolver(scope)
        except UnusableSubject as exc:
            return problems.SUBJECT_INVALID, as_sentence(str(exc))
        if raw is None:
            return problems.SUBJECT_MISSING, "The request does not say who is asking."
        try:
            return check_subject(raw)
        except ValueError as exc:
            return problems.SUBJECT_INVALID, as_sentence(str(exc))

    async def _explanation(self, scope: Scope, send: Send, subject: str, decision_id: str) -> None:
        stored = await anyio.to_thread.run_sync(self.guard.explanations.get, decision_id)
        if stored is None or stored.subject_ref != self.guard.auditor.pseudonym(subject):
            await self._problem(send, problems.NOT_FOUND, "No such decision for this person.")
            return
        wanted = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("lang", [None])[0]
        body = localise(
            with_defaults(
                orjson.loads(stored.body), self.guard.explanation_defaults(stored.policy)
            ),
            wanted,
        )
        body["decision_id"] = stored.decision_id
        body["policy"] = stored.policy
        overrides = await anyio.to_thread.run_sync(self.guard.store.overrides_of, decision_id)
        body["human_overrides"] = [
            {"action": o.action.value, "note": o.note, "at": o.at.isoformat()} for o in overrides
        ]
        await self._json(send, 200, body)

    async def _receipt(self, send: Send, subject: str, decision_id: str) -> None:
        stored = await anyio.to_thread.run_sync(self.guard.explanations.get, decision_id)
        directory = getattr(self.guard.sink, "directory", None)
        if (
            stored is None
            or stored.subject_ref != self.guard.auditor.pseudonym(subject)
            or directory is None
        ):
            await self._problem(send, problems.NOT_FOUND, "No such decision for this person.")
            return
        try:
            receipt = await anyio.to_thread.run_sync(
                lambda: make_receipt(directory, decision_id=stored.decision_id)
            )
        except AuditLogError:
            await self._problem(
                send,
                problems.RECEIPT_PENDING,
                "The decision is not yet covered by a signed checkpoint; ask again in a "
                "few seconds.",
            )
            return
        await _send(send, 200, _TLOG_PROOF, receipt.text().encode())

    async def _data_basis(self, send: Send, subject: str, decision_id: str) -> None:
        kept = await anyio.to_thread.run_sync(self.guard.data_bases.get, decision_id)
        if kept is None or kept.subject_ref != self.guard.auditor.pseudonym(subject):
            await self._problem(send, problems.NOT_FOUND, "No such decision for this person.")
            return
        guard = self.guard
        policy = guard.policy(kept.policy) if kept.policy in guard.policy_names else None
        await self._json(send, 200, shown_to_person(kept, policy))

    async def _review(self, send: Send, subject: str, review_id: str) -> None:
        try:
            ticket = await anyio.to_thread.run_sync(self.guard.reviews.get, review_id)
        except UnknownRecord:
            ticket = None
        if ticket is None or ticket.subject != subject:
            await self._problem(send, problems.NOT_FOUND, "No such review for this person.")
            return
        overdue = is_overdue(ticket, self.guard.now())
        await self._json(
            send,
            200,
            {
                "id": ticket.id,
                "decision_id": ticket.decision_id,
                "policy": ticket.policy,
                "status": ticket.status.value,
                "reason": ticket.reason,
                "deadline": ticket.deadline.isoformat(),
                "overdue": overdue,
                "overdue_detail": overdue_detail(ticket, self.guard.settings.contact)
                if overdue
                else None,
                "outcome": ticket.outcome.value if ticket.outcome else None,
                "outcome_reason": ticket.note,
                "completed_at": ticket.completed_at.isoformat() if ticket.completed_at else None,
            },
        )

    async def _objection(self, scope: Scope, receive: Receive, send: Send, subject: str) -> None:
        policy: str | None
        if scope["method"] == "POST":
            try:
                body = await _read_body(receive)
            except _Disconnected:
                return  # the client left before its body was complete: nothing is recorded
            if body is None:
                await self._problem(send, problems.BAD_REQUEST, "The body is larger than 4 KiB.")
                return
            try:
                data = orjson.loads(body) if body.strip() else {}
            except orjson.JSONDecodeError:
                await self._problem(send, problems.BAD_REQUEST, "The body is not JSON.")
                return
            if (
                not isinstance(data, dict)
                or not data.keys() <= _OBJECTION_FIELDS
                or not isinstance(data.get("policy"), str | None)
            ):
                await self._problem(
                    send,
                    problems.BAD_REQUEST,
                    "The body must be empty (an objection to every automated decision) or a "
                    'JSON object {"policy": "<decision type>"}.',
                )
                return
            policy = data.get("policy")
        else:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            policy = query.get("policy", [None])[0]
        if policy is not None and policy not in self.guard.policy_names:
            await self._problem(
                send, problems.BAD_REQUEST, "There is no decision type of that name."
            )
            return
        if scope["method"] == "POST":
            objection = await anyio.to_thread.run_sync(
                lambda: self.guard.objections.record(subject, policy, channel="http")
            )
            await self._json(
                send, 201, {"id": objection.id, "policy": objection.policy, "status": "recorded"}
            )
        else:
            withdrawn = await anyio.to_thread.run_sync(
                lambda: self.guard.objections.withdraw(subject, policy)
            )
            await self._json(send, 200, {"withdrawn": len(withdrawn), "policy": policy})

    async def _json(self, send: Send, status: int, data: Any) -> None:
        await _send(send, status, _JSON, orjson.dumps(data))

    async def _problem(self, send: Send, problem: ProblemType, detail: str) -> None:
        body = problem_body(self.guard.settings.problem_base, problem, detail)
        await _send(send, problem.status, PROBLEM_CONTENT_TYPE, body)


class PersonRoute(BaseRoute):
    """The router entry of :class:`PersonRoutes`: every HTTP path under the guard's prefix.

    ``guard.install(app)`` puts it first in the app's router, so the person's routes run behind
    the app's own middleware (its authentication included) and no app route can shadow them.
    A prefix test instead of a path pattern keeps the cost for every other request at one
    string comparison.
    """

    include_in_schema = False

    def __init__(self, guard: Guard) -> None:
        self.app = PersonRoutes(guard)
        self.prefix = self.app.prefix

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # route_path(scope) is a suffix of the path: a path without the prefix anywhere in it
        # (every request but the person's own) is turned away by one substring search
        if (
            self.prefix in scope["path"]
            and scope["type"] == "http"
            and route_path(scope).startswith(self.prefix)
        ):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def overdue_detail(ticket: ReviewTicket, contact: str | None) -> str:
    """What the person is told about a review still unanswered after its deadline."""
    where = f" Contact {contact} to ask when you will have it." if contact else ""
    return (
        f"The review of this decision is past its deadline ({ticket.deadline.isoformat()}): "
        f"you were owed a human's answer by then and have not had one yet.{where}"
    )


def route_path(scope: Scope) -> str:
    """The request path below the app's ``root_path`` (what the app's routes match)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


class _Disconnected(Exception):
    """The client went away before the request body was complete."""


async def _read_body(receive: Receive, limit: int = _MAX_BODY) -> bytes | None:
    """The request body, or ``None`` when it is larger than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
