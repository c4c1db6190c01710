"""The console's pages and form posts (an ASGI handler the reviewer's routes delegate to).

- ``GET {console}/``: the queue (``?status=&policy=&due=overdue&page=``)
- ``GET {console}/tickets/{id}``: the case, with the claim, decide, release and escalate forms
- ``POST {console}/tickets/{id}/{claim|release|decision|escalation}``: then back to the case
- ``GET {console}/decisions?id=`` and ``{console}/decisions/{id}``: an automated decision,
  with the override form for medium autonomy; ``POST .../override``

Every form carries a CSRF token (:mod:`kzai_guard.console.csrf`); everything shown is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

import anyio.to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from kzai_guard.console.csrf import CSRF_COOKIE, CsrfTokens
from kzai_guard.console.messages import pick_language, translator
from kzai_guard.core import problems
from kzai_guard.core.problems import ProblemType
from kzai_guard.core.review import Reviewer
from kzai_guard.core.vocabulary import Autonomy
from kzai_guard.errors import OverrideForbidden, ReviewConflict, UnknownRecord
from kzai_guard.http.review_api import (
    ACTIONS,
    MAX_FORM_BODY,
    challenge,
    queue_options,
    refusal_of,
    reviewer_or_refusal,
)
from kzai_guard.http.routes import _Disconnected, _read_body
from kzai_guard.oversight import override_json

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from kzai_guard.guard import Guard

__all__ = ["Console"]

_LANGUAGE_NAMES = (("kk", "Қазақша"), ("ru", "Русский"), ("en", "English"))
_HTML = b"text/html; charset=utf-8"
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
_TICKET_ACTIONS = frozenset({"claim", "release", "decision", "escalation"})


class Console:
    """The console of one guard; templates are loaded once, here."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.base = f"{guard.settings.reviews_prefix}/console"
        self.csrf = CsrfTokens(guard.store.secret("console-csrf-key", _new_key))
        env = Environment(
            loader=PackageLoader("kzai_guard.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
        )
        self.templates = {
            name: env.get_template(f"{name}.html")
            for name in ("queue", "case", "decision", "error")
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send, parts: list[str]) -> None:
        """Serve ``parts``, the path below ``{reviews_prefix}/console/``."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        lang = pick_language(query.get("lang", [None])[0], _header(scope, b"accept-language"))
        page = _Page(self, scope, send, lang)
        reviewer = reviewer_or_refusal(self.guard, scope)
        if not isinstance(reviewer, Reviewer):
            await page.problem(reviewer[0], None)
            return
        page.reviewer = reviewer
        method = scope["method"]
        if parts in ([], [""]) and method == "GET":
            await self._queue(page, query)
        elif len(parts) == 2 and parts[0] == "tickets" and method == "GET":
            await self._case(page, reviewer, parts[1])
        elif parts == ["decisions"] and method == "GET":
            await page.redirect(f"/decisions/{quote(query.get('id', [''])[0], safe='')}")
        elif len(parts) == 2 and parts[0] == "decisions" and method == "GET":
            await self._decision(page, parts[1])
        elif (
            len(parts) == 3
            and method == "POST"
            and (
                (parts[0] == "tickets" and parts[2] in _TICKET_ACTIONS)
                or (parts[0] == "decisions" and parts[2] == "override")
            )
        ):
            await self._post(page, reviewer, receive, parts[0], parts[1], parts[2])
        else:
            await page.problem(problems.NOT_FOUND, f"{self.base}/?lang={lang}")

    async def _queue(self, page: _Page, query: dict[str, list[str]]) -> None:
        try:
            options = queue_options(query)
            found = await anyio.to_thread.run_sync(lambda: self.guard.oversight.queue(**options))
        except ValueError:
            await page.problem(problems.BAD_REQUEST, f"{self.base}/?lang={page.lang}")
            return
        status = query.get("status", ["open"])[0]

        def page_link(number: int) -> str:
            kept = {k: v[0] for k, v in query.items() if k != "page"}
            return f"{self.base}/?{urlencode({**kept, 'page': number, 'lang': page.lang})}"

        await page.render(
            "queue",
            entries=found.entries,
            page=found.page,
            has_more=found.has_more,
            page_link=page_link,
            status=status,
            policy=options["policy"],
            overdue=options["overdue"],
            policies=sorted(self.guard.policy_names),
        )

    async def _case(self, page: _Page, reviewer: Reviewer, review_id: str) -> None:
        try:
            case = await anyio.to_thread.run_sync(
                lambda: self.guard.oversight.case(review_id, reviewer, page.lang)
            )
        except UnknownRecord:
            await page.problem(problems.NOT_FOUND, f"{self.base}/?lang={page.lang}")
            return
        await page.render("case", **case)

    async def _decision(self, page: _Page, decision_id: str) -> None:
        def load() -> tuple[Any, ...] | None:
            stored = self.guard.explanations.get(decision_id)
            if stored is None:
                return None
            return (
                self.guard.policy(stored.policy),
                self.guard.oversight.explanation(decision_id, page.lang),
                [override_json(o) for o in self.guard.store.overrides_of(decision_id)],
            )

        found = await anyio.to_thread.run_sync(load)
        if found is None:
            await page.problem(problems.NOT_FOUND, f"{self.base}/?lang={page.lang}")
            return
        policy, explanation, overrides = found
        await page.render(
            "decision",
            decision_id=decision_id,
            policy=policy,
            explanation=explanation,
            overrides=overrides,
            overridable=policy.autonomy is Autonomy.MEDIUM,
        )

    async def _post(
        self,
        page: _Page,
        reviewer: Reviewer,
        receive: Receive,
        kind: str,
        target: str,
        action: str,
    ) -> None:
        back = f"/{kind}/{quote(target, safe='')}"
        try:
            body = await _read_body(receive, MAX_FORM_BODY)
        except _Disconnected:
            return
        if body is None:
            await page.problem(problems.BAD_REQUEST, page.url(back))
            return
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not self.csrf.valid(page.cookie(CSRF_COOKIE), reviewer.id, form.pop("csrf", None)):
            await page.problem(problems.CSRF_FAILED, page.url(back))
            return
        run = ACTIONS[kind, action]
        try:
            await anyio.to_thread.run_sync(lambda: run(self.guard, target, reviewer, form))
        except (ReviewConflict, UnknownRecord, OverrideForbidden, ValueError) as exc:
            await page.problem(refusal_of(exc)[0], page.url(back))
            return
        await page.redirect(back)


class _Page:
    """One response of the console: its language, reviewer, cookie and rendering."""

    def __init__(self, console: Console, scope: Scope, send: Send, lang: str) -> None:
        self.console = console
        self.scope = scope
        self.send = send
        self.lang = lang
        self.reviewer: Reviewer | None = None
        self.t: Callable[[str], str] = translator(lang)

    def url(self, path: str) -> str:
        """A console URL that keeps the page's language."""
        return f"{self.console.base}{path}?lang={self.lang}"

    def cookie(self, name: str) -> str | None:
        """The value of one request cookie."""
        raw = _header(self.scope, b"cookie") or ""
        for item in raw.split(";"):
            key, _, value = item.strip().partition("=")
            if key == name:
                return value
        return None

    async def render(
        self,
        template: str,
        code: int = 200,
        *,
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
        **context: Any,
    ) -> None:
        """Render a page; a browser without the CSRF cookie gets one."""
        nonce = self.cookie(CSRF_COOKIE)
        headers: list[tuple[bytes, bytes]] = list(extra_headers)
        if self.reviewer is not None and not nonce:
            nonce = CsrfTokens.new_nonce()
            secure = "; Secure" if self.scope.get("scheme") == "https" else ""
            headers.append(
                (
                    b"set-cookie",
                    f"{CSRF_COOKIE}={nonce}; Path={self.console.base}; HttpOnly; "
                    f"SameSite=Strict{secure}".encode("latin-1"),
                )
            )
        csrf = self.console.csrf.token(nonce, self.reviewer.id) if self.reviewer and nonce else ""
        html = self.console.templates[template].render(
            lang=self.lang,
            t=self.t,
            languages=_LANGUAGE_NAMES,
            base=self.console.base,
            reviewer=self.reviewer,
            csrf=csrf,
            when=_when,
            **context,
        )
        await self._send(code, html.encode("utf-8"), headers)

    async def problem(self, problem: ProblemType, back: str | None) -> None:
        """An error page in the page's language, with the problem's status."""
        await self.render(
            "error",
            problem.status,
            extra_headers=challenge(self.console.guard, problem),
            status=problem.status,
            slug=problem.slug,
            back=back,
        )

    async def redirect(self, path: str) -> None:
        """303 to a console page (after a form post, so that reloading does not repeat it)."""
        await self._send(303, b"", [(b"location", self.url(path).encode("latin-1"))])

    async def _send(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", _HTML),
                    (b"content-length", str(len(body)).encode()),
                    *_SECURITY_HEADERS,
                    *headers,
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _when(at: datetime | str) -> str:
    """A time for people: ``2026-03-05 19:00 UTC`` (from a datetime or ISO 8601 text)."""
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _new_key() -> bytes:
    import os

    return os.urandom(32)
