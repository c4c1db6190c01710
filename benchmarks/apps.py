"""The apps the hot path is measured on: one decision endpoint, bare and guarded.

Every variant serves ``GET /decide`` with the same decision function, on Starlette or FastAPI:

- ``bare``: no middleware at all, the baseline;
- ``guarded``: the guard installed and the endpoint under ``@guard.decision``, on the allowed
  path (the subject holds a valid consent, the endpoint gives its explanation), auditing to the
  signed log in async durability;
- ``guarded-null``: the same with a :class:`~kzai_guard.NullSink`, to separate the guard's own
  work from the audit log's;
- ``least``: the per-decision work the rules require written with nothing around it and
  nothing stored (:mod:`benchmarks.least`), what the guard's own work is read against;
- ``basehttp``: a ``BaseHTTPMiddleware`` that does nothing, to show what a pure ASGI design saves;
- ``pureasgi``: a pure ASGI middleware that does nothing, the cost of one more layer.

``build`` is what both the in-process driver and the uvicorn child process call.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from starlette.requests import Request

from benchmarks.asgi_driver import ASGIApp, Receive, Scope, Send

Framework = Literal["starlette", "fastapi"]
Variant = Literal["bare", "guarded", "guarded-null", "least", "basehttp", "pureasgi"]
OtelMode = Literal["api", "sdk"]

FRAMEWORKS: tuple[Framework, ...] = ("starlette", "fastapi")
PATH = "/decide"
SUBJECT_HEADER = "X-Subject-Id"
SUBJECT = "subject-0001"
POLICY = "credit-scoring"
PURPOSE = "credit-scoring"
HEADERS = {SUBJECT_HEADER: SUBJECT}


def score(subject: str | None) -> dict[str, Any]:
    """The decision itself, identical in every variant: a fixed, cheap scoring rule."""
    value = 0.82 if subject else 0.0
    return {"decision": "approve" if value >= 0.5 else "decline", "score": value}


@dataclass
class Built:
    """An app ready to serve, and what to release afterwards."""

    app: ASGIApp
    guard: Any = None
    audit_label: str = ""
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    settle: Callable[[], None] = lambda: None
    """Wait until work the app handed to background threads is done (the audit writer)."""

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()


def guard_missing() -> str | None:
    """Why the guard cannot be built, or None when the core is there."""
    try:
        import kzai_guard as kg
    except ImportError as exc:
        return f"kzai_guard cannot be imported ({exc})"
    needed = (
        "Guard",
        "DecisionPolicy",
        "Domain",
        "Significance",
        "Autonomy",
        "RiskClass",
        "from_header",
        "explain",
        "Explanation",
    )
    missing = [name for name in needed if not hasattr(kg, name)]
    if missing:
        return f"kzai_guard has no {', '.join(missing)} yet"
    return None


def configure_otel(mode: OtelMode) -> None:
    """``api``: leave OpenTelemetry unconfigured (every call a no-op); ``sdk``: a real
    TracerProvider whose spans go to an exporter that drops them."""
    if mode == "api":
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class DroppingExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DroppingExporter()))
    trace.set_tracer_provider(provider)


def build(
    framework: Framework, variant: Variant, audit: str = "log", store: str = "memory://"
) -> Built:
    """Build one variant. ``audit``: ``log`` (the signed log, async, in a temporary
    directory; falls back to ``null`` when the log is not there yet) or ``null``."""
    if variant == "guarded":
        return _guarded(framework, audit, store)
    if variant == "guarded-null":
        return _guarded(framework, "null", store)
    if variant == "least":
        from benchmarks import least

        return least.build(framework)
    app = app_for(framework, _bare_endpoint(framework))
    if variant == "basehttp":
        from starlette.middleware.base import BaseHTTPMiddleware

        async def passthrough(request: Any, call_next: Any) -> Any:
            return await call_next(request)

        app.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    elif variant == "pureasgi":
        app.add_middleware(NoopMiddleware)
    return Built(app)


class NoopMiddleware:
    """A pure ASGI middleware that does nothing but pass the call on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def app_for(framework: Framework, endpoint: Callable[..., Awaitable[Any]]) -> Any:
    """An app that serves ``endpoint`` at :data:`PATH`, and nothing else."""
    if framework == "starlette":
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(routes=[Route(PATH, endpoint)])
    from fastapi import FastAPI

    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    api.add_api_route(PATH, endpoint, methods=["GET"])
    return api


def _bare_endpoint(framework: Framework) -> Callable[..., Awaitable[Any]]:
    if framework == "starlette":
        from starlette.responses import JSONResponse

        async def decide(request: Request) -> JSONResponse:
            return JSONResponse(score(request.headers.get(SUBJECT_HEADER)))

        return decide

    async def decide_api(request: Request) -> dict[str, Any]:
        return score(request.headers.get(SUBJECT_HEADER))

    return decide_api


def audit_sink(kind: str) -> tuple[Any, str, Callable[[], None]]:
    """The audit target for a guard: (sink, label, cleanup)."""
    if kind == "log":
        from benchmarks import signed_log

        if signed_log.missing() is None:
            directory = tempfile.TemporaryDirectory(prefix="kzai-bench-audit-")
            log = signed_log.open_log(Path(directory.name), "async")

            def cleanup() -> None:
                log.close()
                directory.cleanup()

            return log, "signed log, async", cleanup
    from kzai_guard.audit.sink import NullSink

    label = "null sink" if kind == "null" else "null sink (signed log not available)"
    return NullSink(), label, lambda: None


def make_guard(store: str = "memory://", audit: Any = None) -> Any:
    """The guard every guarded variant uses: one high-risk, solely automated credit policy.

    Its durability is ``async``, as the hot path's targets are stated: in ``sync`` a decision
    also waits for its explanation to be stored, a latency the deployment figures measure."""
    import kzai_guard as kg

    if audit is None:
        from kzai_guard.audit.sink import NullSink

        audit = NullSink()
    return kg.Guard(
        policies=[policy()],
        profile="kz",
        store=store,
        subject=kg.from_header(SUBJECT_HEADER),
        audit=audit,
        contact="credit-decisions@bank.example.kz",
        durability="async",
    )


def policy() -> Any:
    """The one policy every guarded variant runs: high-risk, solely automated credit scoring."""
    import kzai_guard as kg

    return kg.DecisionPolicy(
        name=POLICY,
        purpose=PURPOSE,
        domain=kg.Domain.CREDIT,
        significance=kg.Significance.LEGAL_EFFECT,
        autonomy=kg.Autonomy.HIGH,
        risk=kg.RiskClass.HIGH,
        model=kg.ModelInfo(name="scorer", version="1.4", provider="bench"),
    )


def explanation() -> Any:
    """The explanation every guarded variant gives, built anew on each call as an endpoint
    would."""
    import kzai_guard as kg

    return kg.Explanation(
        summary={kg.Language.EN: "Application approved", kg.Language.RU: "Заявка одобрена"},
        factors=(_factor(),),
        ai_role="The score was computed by a model; no person reviewed it.",
        consequences="The loan is granted on the offered terms.",
    )


def _factor() -> Any:
    global _FACTOR
    if _FACTOR is None:
        import kzai_guard as kg

        _FACTOR = kg.Factor(name="repayment history", direction=kg.Direction.FAVOURABLE, weight=0.6)
    return _FACTOR


_FACTOR: Any = None


def _guarded(framework: Framework, audit: str, store: str) -> Built:
    import kzai_guard as kg

    sink, label, cleanup = audit_sink(audit)
    guard: kg.Guard = make_guard(store=store, audit=sink)
    guard.consents.grant(subject=SUBJECT, purpose=PURPOSE, notice_version="1")

    if framework == "starlette":
        from starlette.responses import JSONResponse

        @guard.decision(POLICY)
        async def decide(request: Request) -> JSONResponse:
            kg.explain(explanation())
            return JSONResponse(score(request.headers.get(SUBJECT_HEADER)))

        app = app_for(framework, decide)
    else:

        @guard.decision(POLICY)
        async def decide_api(request: Request) -> dict[str, Any]:
            kg.explain(explanation())
            return score(request.headers.get(SUBJECT_HEADER))

        app = app_for(framework, decide_api)
    guard.install(app)
    return Built(
        app,
        guard=guard,
        audit_label=label,
        cleanups=[cleanup, guard.close],
        settle=settler(guard, sink),
    )


def settler(guard: Any, sink: Any) -> Callable[[], None]:
    """Waits for the guard's background writers: stored explanations, then the audit log."""
    flushes = [
        flush
        for flush in (
            getattr(getattr(guard, "explanations", None), "flush", None),
            getattr(sink, "flush", None),
        )
        if callable(flush)
    ]

    def settle() -> None:
        for flush in flushes:
            flush()

    return settle
