"""Section 1d: where the guarded decision's time goes, one layer at a time.

The Starlette app of section 1a (``apps``) is built in layers, each adding one part of the
guard to the one below it, and every layer is driven like section 1a's variants (in a child
process pinned to one core, OpenTelemetry unconfigured, interleaved rotating rounds, process
CPU time per request, background writers drained at the end of each repetition):

- ``bare``: no guard;
- ``middleware``: the guard installed, the endpoint undecorated (the pure ASGI middleware and
  the match of the person's routes);
- ``decorator``: ``@guard.decision`` with a stand-in gate that does none of the gate's work
  (it hands out a prepared decision with a fresh id and finishes nothing); the endpoint
  attaches one explanation made at start-up;
- ``begin``: the real :meth:`~kzai_guard.gate.Gate.begin` (subject, consent, verdict), the
  stand-in finish;
- ``finish``: the stand-in begin, the real :meth:`~kzai_guard.gate.Gate.finish` (the
  explanation and the record's draft handed to their writers, telemetry, response headers);
- ``gate``: both real, the explanation still made once at start-up;
- ``guarded-null``: section 1a's variant, the endpoint building its pydantic ``Explanation``
  per request, auditing to a ``NullSink``;
- ``guarded``: the same auditing to the signed log (async).

Each figure is one layer beside the layer below it, so its delta is what that part costs.
The parts overlap a little (the stand-ins themselves cost something), so the deltas need not
add up to section 1a's total exactly.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from benchmarks import apps
from benchmarks.asgi_driver import Driver, http_scope
from benchmarks.budget import BUDGETS, Budget
from benchmarks.child import ChildFailed, emit, run_child
from benchmarks.hotpath import repetition
from benchmarks.machine import pin
from benchmarks.measure import Figure, Sample, rotated, unavailable

SECTION = "breakdown"
LAYERS = (
    "bare",
    "middleware",
    "decorator",
    "begin",
    "finish",
    "gate",
    "guarded-null",
    "guarded",
)
PARTS: tuple[tuple[str, str, str], ...] = (
    ("middleware", "bare", "the pure ASGI middleware and the person's routes"),
    ("decorator", "middleware", "the decorator, explain() and a stand-in gate"),
    ("begin", "decorator", "Gate.begin: subject, consent, verdict"),
    ("finish", "decorator", "Gate.finish: explanation and record handed to the writers, headers"),
    ("guarded-null", "gate", "the endpoint's Explanation model, built per request"),
    ("guarded", "guarded-null", "the signed log (async) instead of a NullSink"),
)
"""(layer, the layer it stands beside, what the difference is)."""


def run(budget: Budget, core: int | None) -> list[Figure]:
    """The parts of the guarded decision, each beside the layer below it."""
    args = ["--mode", budget.mode]
    if core is not None:
        args += ["--core", str(core)]
    try:
        answer = run_child("benchmarks.breakdown", args, timeout=1800)
    except ChildFailed as exc:
        return _unavailable(str(exc))
    if "missing" in answer:
        return _unavailable(answer["missing"])
    samples = answer["layers"]
    return [
        Figure(
            SECTION,
            _name(what),
            "us/req",
            subject_label=layer,
            subject=Sample.of(samples[layer]),
            baseline_label=below,
            baseline=Sample.of(samples[below]),
            extra={"core": answer.get("core"), "measure": "process CPU time per request"},
        )
        for layer, below, what in PARTS
    ]


def _unavailable(why: str) -> list[Figure]:
    return [unavailable(SECTION, _name(what), "us/req", why) for *_, what in PARTS]


def _name(what: str) -> str:
    return f"starlette part: {what}"


class StandInGate:
    """What ``guard_function`` needs of a gate, with begin, finish or both replaced by a
    stand-in that does none of the gate's work."""

    def __init__(self, gate: Any, real_begin: bool, real_finish: bool) -> None:
        from kzai_guard.context import DecisionContext
        from kzai_guard.ids import new_id

        self.enforce = gate.enforce
        self.fail_closed = gate.fail_closed
        self.sink = gate.sink
        prepared = gate.begin(DecisionContext(http_scope(apps.PATH, apps.HEADERS)))
        decision_type = type(prepared)
        fields = (prepared.subject, prepared.verdict, prepared.reviewer)
        tail = (prepared.subject_ref, prepared.at)

        def begin(context: Any) -> Any:
            subject, verdict, reviewer = fields
            return decision_type(new_id(), subject, verdict, reviewer, 0, context, *tail)

        self.begin: Callable[[Any], Any] = gate.begin if real_begin else begin
        self.finish: Callable[[Any], Any] = gate.finish if real_finish else _finish_nothing
        self.refuse = gate.refuse
        self.failed = gate.failed
        self.audit_unavailable = gate.audit_unavailable


def _finish_nothing(decision: Any) -> None:
    return None


def build(layer: str) -> apps.Built:
    """One layer of the Starlette app."""
    if layer in ("bare", "guarded", "guarded-null"):
        return apps.build("starlette", layer)  # type: ignore[arg-type]
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import kzai_guard as kg
    from kzai_guard.decision import guard_function

    guard = apps.make_guard()
    guard.consents.grant(subject=apps.SUBJECT, purpose=apps.PURPOSE, notice_version="1")
    explanation = apps.explanation()

    async def decide(request: Request) -> JSONResponse:
        kg.explain(explanation)
        return JSONResponse(apps.score(request.headers.get(apps.SUBJECT_HEADER)))

    async def undecorated(request: Request) -> JSONResponse:
        return JSONResponse(apps.score(request.headers.get(apps.SUBJECT_HEADER)))

    if layer == "middleware":
        endpoint = undecorated
    elif layer == "gate":
        endpoint = guard.decision(apps.POLICY)(decide)
    else:
        gate = guard._gates[apps.POLICY]
        stand_in = StandInGate(gate, real_begin=layer == "begin", real_finish=layer == "finish")
        endpoint = guard_function(stand_in, decide)  # type: ignore[arg-type]
    app = Starlette(routes=[Route(apps.PATH, endpoint)])
    guard.install(app)
    return apps.Built(app, guard=guard, cleanups=[guard.close], settle=apps.settler(guard, None))


def measure(budget: Budget) -> dict[str, Any]:
    """In the child: build every layer, check each answers, time them interleaved."""
    missing = apps.guard_missing()
    if missing:
        return {"missing": missing}
    runner = asyncio.Runner()
    built_all: list[apps.Built] = []
    try:
        runs: dict[str, Callable[[], float]] = {}
        for layer in LAYERS:
            built = build(layer)
            built_all.append(built)
            driver = Driver(built.app, http_scope(apps.PATH, apps.HEADERS))
            runner.run(driver.check())
            runner.run(driver.run(max(10, budget.requests // 10)))
            built.settle()
            runs[layer] = repetition(runner, driver, built.settle, budget.requests, [])
        return {"layers": rotated(runs, budget.rounds)}
    finally:
        for built in built_all:
            built.close()
        runner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=sorted(BUDGETS), default="smoke")
    parser.add_argument("--core", type=int, default=None)
    args = parser.parse_args()
    core = pin(args.core)
    answer = measure(BUDGETS[args.mode])
    answer["core"] = core
    emit(answer)


if __name__ == "__main__":
    main()
