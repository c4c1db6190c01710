"""Section 1a: the decision endpoint bare and guarded, called in-process through ASGI.

Each OpenTelemetry mode runs in its own child process (the global tracer provider can be set
once per process), pinned to one core. Within it, the bare app, the guarded app, the least
guard (:mod:`benchmarks.least`) and the two no-op middlewares are driven in interleaved,
rotating rounds of back-to-back requests; a figure is microseconds of process CPU time (every
thread) per request, which other work on a shared machine disturbs far less than wall time
(kept in the JSON as ``wall_us``); the guard's cost is guarded minus bare. The CPU time of the
thread that serves the requests is kept too: the guarded variants' figures for that thread
alone show how much of the cost is the request's own and how much the background writers'. A
guarded repetition ends when the guard's background writers (stored explanations, the audit
log) have written everything they were handed, so that work is counted in the repetition that
caused it and never spills into the next.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from benchmarks import apps
from benchmarks.asgi_driver import Driver, http_scope
from benchmarks.budget import BUDGETS, Budget
from benchmarks.child import ChildFailed, emit, run_child
from benchmarks.machine import pin
from benchmarks.measure import Figure, Sample, Target, rotated, unavailable

SECTION = "hotpath"
TARGET_US = 10.0
ADDED = Target(TARGET_US, "max", on="delta", text=f"<= {TARGET_US:g} us added")
SERVING_ADDED = Target(10.0, "max", on="delta", text="<= 10 us added (serving thread)")
"""Starlette in-process, the guarded decision with the signed log: the serving thread."""
FASTAPI_RATIO = Target(1.25, "max", on="ratio", text="<= 1.25x bare (whole process)")
"""FastAPI in-process, the guarded decision with the signed log: every thread."""
SDK_ADDED = Target(10.0, "max", on="delta", text="<= 10 us more with an SDK")
"""What the guard costs more once an OpenTelemetry SDK is configured, each figure read
against the bare app with the same configuration."""


def run(budget: Budget, core: int | None) -> list[Figure]:
    """Every in-process hot-path figure, for both OpenTelemetry modes."""
    figures: list[Figure] = []
    for otel in ("api", "sdk"):
        args = ["--mode", budget.mode, "--otel", otel]
        if core is not None:
            args += ["--core", str(core)]
        try:
            answer = run_child("benchmarks.hotpath", args, timeout=1800)
        except ChildFailed as exc:
            for framework in apps.FRAMEWORKS:
                figures.append(
                    unavailable(SECTION, _name(framework, "guarded", otel), "us/req", str(exc))
                )
            continue
        figures += _figures(answer, otel)
    return figures + _sdk_figures(figures)


def _sdk_figures(figures: list[Figure]) -> list[Figure]:
    """The guard's SDK-specific cost: its figure with an SDK beside its figure without, each
    already read against the bare app of the same OpenTelemetry configuration."""
    by_name = {f.name: f for f in figures}
    out: list[Figure] = []
    for framework in apps.FRAMEWORKS:
        name = f"in-process {framework}: guarded decision, added with an OpenTelemetry SDK"
        api = by_name.get(_name(framework, "guarded", "api"))
        sdk = by_name.get(_name(framework, "guarded", "sdk"))
        if api is None or sdk is None or api.delta is None or sdk.delta is None:
            out.append(unavailable(SECTION, name, "us/req", "a figure was not measured"))
            continue
        out.append(
            Figure(
                SECTION,
                name,
                "us/req",
                subject_label="guarded - bare, SDK",
                subject=Sample.of([sdk.delta]),
                baseline_label="guarded - bare, API only",
                baseline=Sample.of([api.delta]),
                target=SDK_ADDED,
                note="each side read against the bare app with the same configuration",
            )
        )
    return out


def _name(framework: str, variant: str, otel: str, part: str = "") -> str:
    what = {
        "guarded": "guarded decision",
        "guarded-null": "guarded decision, audit to NullSink",
        "least": "least guard, nothing stored",
        "basehttp": "BaseHTTPMiddleware no-op",
        "pureasgi": "pure ASGI middleware no-op",
    }[variant]
    return f"in-process {framework}: {what}{part} (otel {otel})"


_FASTAPI_GUARDED = ("fastapi", "guarded", "api")


def _figures(answer: dict[str, Any], otel: str) -> list[Figure]:
    figures: list[Figure] = []
    pinned = answer.get("core")
    for framework, result in answer["frameworks"].items():
        bare = Sample.of(result["bare"])
        for variant in ("guarded", "guarded-null", "least", "basehttp", "pureasgi"):
            if otel == "sdk" and variant != "guarded":
                continue
            target = FASTAPI_RATIO if (framework, variant, otel) == _FASTAPI_GUARDED else None
            if variant not in result:
                figures.append(
                    unavailable(
                        SECTION,
                        _name(framework, variant, otel),
                        "us/req",
                        result.get("missing", "not built"),
                        target=target,
                    )
                )
                continue
            note = {
                "guarded": f"audit: {answer['audit']}",
                "guarded-null": "the guard's own work, no audit log",
                "least": "the rules' work with nothing around it (benchmarks/least.py)",
            }.get(variant, "")
            if otel == "sdk" and framework == "fastapi" and _fastapi_traces_itself():
                note += "; FastAPI traces every request itself once an SDK is configured, so the "
                note += "bare baseline carries FastAPI's own spans"
            figures.append(
                Figure(
                    SECTION,
                    _name(framework, variant, otel),
                    "us/req",
                    subject_label=variant,
                    subject=Sample.of(result[variant]),
                    baseline_label="bare",
                    baseline=bare,
                    target=target,
                    note=note,
                    extra={
                        "core": pinned,
                        "otel": otel,
                        "framework": framework,
                        "measure": "process CPU time per request",
                        "wall_us": result["wall"][variant],
                        "bare_wall_us": result["wall"]["bare"],
                    },
                )
            )
            if variant.startswith("guarded") and otel == "api" and "thread" in result:
                figures.append(_thread_figure(framework, variant, result, pinned))
    return figures


def _thread_figure(framework: str, variant: str, result: dict[str, Any], core: Any) -> Figure:
    """The guarded variant's cost on the thread that serves the request, without the writers'."""
    return Figure(
        SECTION,
        _name(framework, variant, "api", ", the request's thread alone"),
        "us/req",
        subject_label=variant,
        subject=Sample.of(result["thread"][variant]),
        baseline_label="bare",
        baseline=Sample.of(result["thread"]["bare"]),
        target=SERVING_ADDED if (framework, variant) == ("starlette", "guarded") else None,
        note="CPU time of the thread serving the requests; the rest of the process figure is "
        "the background writers' (stored explanations, audit log)",
        extra={"core": core, "otel": "api", "framework": framework, "measure": "thread CPU time"},
    )


def repetition(
    runner: asyncio.Runner,
    driver: Driver,
    settle: Callable[[], None],
    requests: int,
    wall: list[float],
    thread: list[float] | None = None,
) -> Callable[[], float]:
    """One repetition: ``requests`` back to back, then wait for background writers; returns
    process CPU microseconds per request and appends wall microseconds per request to ``wall``
    and, when given, the serving thread's own CPU microseconds per request to ``thread``."""

    def once() -> float:
        gc.collect()
        start, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
        runner.run(driver.run(requests))
        own = time.thread_time() - own
        settle()
        per = 1e6 / requests
        wall.append((time.perf_counter() - start) * per)
        if thread is not None:
            thread.append(own * per)
        return (time.process_time() - cpu) * per

    return once


def _fastapi_traces_itself() -> bool:
    from importlib.util import find_spec

    try:
        return find_spec("fastapi.telemetry") is not None
    except ModuleNotFoundError:
        return False


def measure(budget: Budget, otel: apps.OtelMode) -> dict[str, Any]:
    """In the child: build the variants, check each answers, time them interleaved."""
    apps.configure_otel(otel)
    missing = apps.guard_missing()
    frameworks: dict[str, Any] = {}
    audit_label = "none"
    built_all: list[apps.Built] = []
    runner = asyncio.Runner()
    try:
        for framework in apps.FRAMEWORKS:
            variants: list[apps.Variant] = ["bare", "guarded"]
            if otel == "api":
                variants += ["guarded-null", "least", "basehttp", "pureasgi"]
            drivers: dict[str, Driver] = {}
            settles: dict[str, Callable[[], None]] = {}
            why_not = missing
            for variant in variants:
                guarded = variant.startswith("guarded") or variant == "least"
                if guarded and missing:
                    continue
                try:
                    built = apps.build(framework, variant)
                except Exception as exc:
                    if not guarded:
                        raise
                    why_not = f"the guarded app cannot be built: {type(exc).__name__}: {exc}"
                    continue
                built_all.append(built)
                if variant == "guarded":
                    audit_label = built.audit_label
                driver = Driver(built.app, http_scope(apps.PATH, apps.HEADERS))
                try:
                    runner.run(driver.check())
                    runner.run(driver.run(max(10, budget.requests // 10)))
                except Exception as exc:
                    if not guarded:
                        raise
                    why_not = f"the guarded request failed: {type(exc).__name__}: {exc}"
                    continue
                drivers[variant] = driver
                settles[variant] = built.settle
                built.settle()

            wall: dict[str, list[float]] = {v: [] for v in drivers}
            thread: dict[str, list[float]] = {v: [] for v in drivers}
            runs = {
                v: repetition(runner, drivers[v], settles[v], budget.requests, wall[v], thread[v])
                for v in drivers
            }
            samples = rotated(runs, budget.rounds)
            result: dict[str, Any] = dict(samples)
            result["wall"] = wall
            result["thread"] = thread
            if why_not:
                result["missing"] = why_not
            frameworks[framework] = result
    finally:
        for built in built_all:
            built.close()
        runner.close()
    return {"frameworks": frameworks, "audit": audit_label}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=sorted(BUDGETS), default="smoke")
    parser.add_argument("--otel", choices=["api", "sdk"], default="api")
    parser.add_argument("--core", type=int, default=None)
    args = parser.parse_args()
    core = pin(args.core)
    answer = measure(BUDGETS[args.mode], args.otel)
    answer["core"] = core
    emit(answer)


if __name__ == "__main__":
    main()
