"""The least guard: the per-decision work the core's rules require, in as few steps as we know.

A reference for section 1a, not a product: it shows what the guard's work costs when it is
written with nothing around it, so that the guard's figure can be read against it as well as
against the bare app. On the allowed path of the benchmark's policy it does, per decision:

- a pure ASGI middleware: the person's routes matched by prefix, a decision context in a
  context variable, the response headers added as the response starts;
- a decorator: a UUIDv7 decision id; the subject header read (every header scanned, so that
  a repeated one could be refused) and the objection header with it; the subject's pseudonym
  from a per-process cache; the kill switch, consent (purpose, notice version, expiry) and
  stored objection looked up in dicts; the verdict taken from the guard's own table of all 64
  combinations of facts; a refusal raised before the function runs;
- after the function: the explanation (the endpoint builds the pydantic
  :class:`~kzai_guard.Explanation`, as it does for the guard) encoded as JSON and digested;
  the latency, verdict and decision id counted through the OpenTelemetry API and the trace id
  read; the audit record built as a tuple of the same fields as
  :class:`~kzai_guard.audit.record.AuditRecord`; three response headers.

What it leaves out, and the guard does not: storing anything (the explanation and the audit
record go into bounded in-memory containers that nothing reads), keeping the facts fresh across
worker processes, checking a subject seen for the first time, the reviewer from the
authenticated principal, the structured parsing of the objection header, the refusal paths
(problem responses, review tickets) and monitor mode.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import metrics
from opentelemetry.trace import INVALID_SPAN, get_current_span
from starlette.requests import Request

from benchmarks import apps
from benchmarks.asgi_driver import ASGIApp, Message, Receive, Scope, Send

__all__ = ["build"]

_KEEP = 4096
"""How many explanations and records the in-memory containers hold before they drop."""


class _Context:
    __slots__ = ("explanation", "headers", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.explanation: Any = None
        self.headers: list[tuple[bytes, bytes]] | None = None


class _Refused(Exception):
    """A refusing verdict: answered 403 by the middleware."""


_current: ContextVar[_Context | None] = ContextVar("least_guard", default=None)


class LeastMiddleware:
    """The decision context per request and the response headers; refusals as 403."""

    def __init__(self, app: ASGIApp, prefix: str = "/ai-decisions/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        context = _Context(scope)
        token = _current.set(context)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and context.headers:
                message["headers"] = [*message.get("headers", ()), *context.headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except _Refused:
            await send({"type": "http.response.start", "status": 403, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        finally:
            _current.reset(token)


class LeastGuard:
    """One policy's facts in dicts and its verdicts in a table; see the module docstring."""

    def __init__(
        self, verdicts: tuple[Any, ...], disclosure: bytes, subject_header: str, policy: str
    ) -> None:
        self.verdicts = verdicts
        self.disclosure = disclosure
        self.subject_header = subject_header.lower().encode("latin-1")
        self.objection_header = b"ai-objection"
        self.policy = policy
        self.purpose = apps.PURPOSE
        self.notice = "1"
        self.key = os.urandom(32)
        self.pseudonyms: dict[str, str] = {}
        self.suspended: set[str] = set()
        self.consents: dict[tuple[str, str], tuple[str, float | None]] = {}
        self.objections: set[str] = set()
        self.explanations: dict[str, bytes] = {}
        self.records: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=_KEEP)
        meter = metrics.get_meter("least_guard")
        self.counter = meter.create_counter("least.decisions")
        self.latency = meter.create_histogram("least.decision.duration", unit="us")
        self.attributes = {"policy": policy, "verdict": "allow", "reason": "consent"}

    def grant(self, subject: str) -> None:
        self.consents[(subject, self.purpose)] = (self.notice, time.time() + 86_400.0)

    def pseudonym(self, subject: str) -> str:
        ref = self.pseudonyms.get(subject)
        if ref is None:
            ref = hmac.new(self.key, subject.encode(), hashlib.sha256).hexdigest()
            self.pseudonyms[subject] = ref
        return ref

    def decision(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        from kzai_guard.core.explanation import explanation_json
        from kzai_guard.ids import new_id

        verdicts, disclosure = self.verdicts, self.disclosure
        wanted, objection_header = self.subject_header, self.objection_header
        purpose, notice, policy = self.purpose, self.notice, self.policy
        consents, objections, suspended = self.consents, self.objections, self.suspended
        explanations, records, pseudonym = self.explanations, self.records, self.pseudonym
        counter, latency, attributes = self.counter, self.latency, self.attributes
        sha256, clock, now_s = hashlib.sha256, time.perf_counter_ns, time.time

        @functools.wraps(fn)
        async def decide(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            context = _current.get()
            assert context is not None
            decision_id = new_id()
            raw_subject = None
            signal = False
            for key, value in context.scope["headers"]:
                if key == wanted:
                    if raw_subject is not None:
                        raise _Refused
                    raw_subject = value
                elif key == objection_header:
                    signal = value == b"?1"
            if raw_subject is None:
                raise _Refused
            subject = raw_subject.decode()
            ref = pseudonym(subject)
            consent = consents.get((subject, purpose))
            verdict = verdicts[
                (policy in suspended)
                | (
                    consent is not None
                    and consent[0] == notice
                    and (consent[1] is None or consent[1] > now_s())
                )
                << 2
                | (subject in objections) << 3
                | signal << 4
            ]
            if not verdict.allowed:
                raise _Refused
            result = await fn(*args, **kwargs)
            explanation = context.explanation
            raw = explanation_json(explanation)
            digest = sha256(raw).hexdigest()
            if len(explanations) >= _KEEP:
                explanations.clear()
            explanations[decision_id] = raw
            took = (clock() - started) // 1000
            counter.add(1, attributes)
            latency.record(took, attributes)
            span = get_current_span()
            trace_id = None
            if span is not INVALID_SPAN and span.get_span_context().is_valid:
                trace_id = f"{span.get_span_context().trace_id:032x}"
            records.append(
                (
                    decision_id,
                    time.time_ns() // 1000,
                    "decision",
                    policy,
                    "digest",
                    ref,
                    purpose,
                    "kz",
                    "enforce",
                    "legal_effect",
                    "high",
                    verdict.basis,
                    verdict.outcome,
                    verdict.reason,
                    None,
                    None,
                    digest,
                    "scorer/1.4",
                    trace_id,
                    took,
                    None,
                )
            )
            encoded = decision_id.encode()
            context.headers = [
                (b"ai-disclosure", disclosure),
                (b"ai-decision-id", encoded),
                (b"link", b"</ai-decisions/" + encoded + b'/explanation>; rel="explanation"'),
            ]
            return result

        return decide


def explain(explanation: Any) -> None:
    """Attach the decision's explanation, as :func:`kzai_guard.explain` does."""
    context = _current.get()
    if context is None:
        raise RuntimeError("explain() outside a decision")
    context.explanation = explanation


def build(framework: apps.Framework) -> apps.Built:
    """The benchmark's decision endpoint under the least guard, the subject's consent granted."""
    from kzai_guard.core.profiles import Profile
    from kzai_guard.gate import verdict_table
    from kzai_guard.http.disclosure import disclosure_header

    policy = apps.policy()
    guard = LeastGuard(
        verdict_table(policy, Profile.KZ),
        disclosure_header(policy.model, human_reviewed=False),
        apps.SUBJECT_HEADER,
        apps.POLICY,
    )
    guard.grant(apps.SUBJECT)
    if framework == "starlette":
        from starlette.responses import JSONResponse

        @guard.decision
        async def decide(request: Request) -> JSONResponse:
            explain(apps.explanation())
            return JSONResponse(apps.score(request.headers.get(apps.SUBJECT_HEADER)))

        app = apps.app_for(framework, decide)
    else:

        @guard.decision
        async def decide_api(request: Request) -> dict[str, Any]:
            explain(apps.explanation())
            return apps.score(request.headers.get(apps.SUBJECT_HEADER))

        app = apps.app_for(framework, decide_api)
    app.add_middleware(LeastMiddleware)
    return apps.Built(app, guard=guard, audit_label="nothing stored")
