"""Section 1b: the same endpoint through a real server, uvicorn on 127.0.0.1.

Every variant runs in its own uvicorn process pinned to the server core; the load generator
(:mod:`benchmarks.loadgen`) runs in another process on another core and drives one server at a
time, in interleaved rotating rounds. At saturation a single-core server spends
``1 / throughput`` seconds per request, so the guard's cost is the difference of those times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Any

import orjson

from benchmarks import apps
from benchmarks.budget import Budget
from benchmarks.child import ROOT
from benchmarks.hotpath import ADDED
from benchmarks.measure import Figure, Sample, rotated, unavailable

SECTION = "served"
VARIANTS: tuple[tuple[str, str], ...] = (
    ("bare", "api"),
    ("guarded", "api"),
    ("guarded", "sdk"),
    ("basehttp", "api"),
)


@dataclass
class Served:
    """A running uvicorn child."""

    port: int
    info: dict[str, Any]


class ServerFailed(RuntimeError):
    """The server child exited before it listened."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


@contextmanager
def _server(framework: str, variant: str, otel: str, core: int | None) -> Iterator[Served]:
    args = [sys.executable, "-m", "benchmarks.server", "--framework", framework,
            "--variant", variant, "--otel", otel]
    if core is not None:
        args += ["--core", str(core)]
    proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("{"):
            proc.wait(timeout=10)
            err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-6:]
            raise ServerFailed(" | ".join(err) or f"exit {proc.returncode}")
        info = orjson.loads(line)
        yield Served(info["port"], info)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LoadGenerator:
    """The long-lived load generator child, driven one round at a time."""

    def __init__(self, core: int | None) -> None:
        prefix = ["taskset", "-c", str(core)] if core is not None and _has_taskset() else []
        self._proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "benchmarks.loadgen"], cwd=ROOT, env=_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.core = core if prefix else None

    def round(self, port: int, seconds: float, connections: int) -> dict[str, Any]:
        stdin: IO[str] | None = self._proc.stdin
        stdout: IO[str] | None = self._proc.stdout
        assert stdin is not None and stdout is not None
        command = {"port": port, "path": apps.PATH, "headers": apps.HEADERS,
                   "connections": connections, "duration": seconds,
                   "warmup": min(0.3, seconds / 3)}
        stdin.write(orjson.dumps(command).decode() + "\n")
        stdin.flush()
        answer: dict[str, Any] = orjson.loads(stdout.readline())
        return answer

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None


def run(budget: Budget, layout: dict[str, int | None]) -> list[Figure]:
    figures: list[Figure] = []
    for framework in apps.FRAMEWORKS:
        figures += _framework(framework, budget, layout)
    return figures


def _name(framework: str, variant: str, otel: str) -> str:
    what = {"guarded": "guarded decision", "basehttp": "BaseHTTPMiddleware no-op"}[variant]
    return f"uvicorn {framework}: {what} (otel {otel})"


def _framework(framework: str, budget: Budget, layout: dict[str, int | None]) -> list[Figure]:
    results: dict[str, list[dict[str, Any]]] = {}
    failures: dict[str, str] = {}
    info: dict[str, Any] = {}
    gen = LoadGenerator(layout["client"])
    try:
        with ExitStack() as stack:
            servers: dict[str, Served] = {}
            for variant, otel in VARIANTS:
                key = f"{variant}/{otel}"
                if variant == "guarded" and (why := apps.guard_missing()):
                    failures[key] = why
                    continue
                try:
                    served = stack.enter_context(_server(framework, variant, otel,
                                                         layout["server"]))
                except ServerFailed as exc:
                    if variant == "bare":
                        raise
                    failures[key] = f"server did not start: {exc}"
                    continue
                probe = gen.round(served.port, 0.05, 1)
                if "error" in probe or set(probe["statuses"]) != {"200"}:
                    failures[key] = f"server answered {probe.get('statuses') or probe}"
                    continue
                servers[key] = served
                info = served.info
                results[key] = []

            def once(key: str) -> Any:
                def go() -> float:
                    answer = gen.round(servers[key].port, budget.server_seconds,
                                       budget.connections)
                    results[key].append(answer)
                    return 1e6 * answer["seconds"] / max(1, answer["requests"])

                return go

            samples = rotated({key: once(key) for key in servers}, budget.server_rounds)
    finally:
        gen.close()

    figures: list[Figure] = []
    bare = Sample.of(samples["bare/api"])
    for variant, otel in VARIANTS[1:]:
        key = f"{variant}/{otel}"
        target = ADDED if variant == "guarded" else None
        if key not in samples:
            figures.append(unavailable(SECTION, _name(framework, variant, otel), "us/req",
                                       failures.get(key, "not measured"), target=target))
            continue
        rounds = results[key]
        busy = max(r["client_busy"] for r in results["bare/api"] + rounds)
        note = f"server {info.get('loop')}+{info.get('http')}, core {layout['server']}; " \
               f"load generator core {gen.core}, busy up to {busy:.0%}"
        if busy > 0.9:
            note += " (client-bound: added time understated)"
        figures.append(Figure(
            SECTION, _name(framework, variant, otel), "us/req",
            subject_label=variant, subject=Sample.of(samples[key]),
            baseline_label="bare", baseline=bare, target=target, note=note,
            extra={
                "req_per_s": [r["requests"] / r["seconds"] for r in rounds],
                "bare_req_per_s": [r["requests"] / r["seconds"] for r in results["bare/api"]],
                "p50_us": [r["p50_us"] for r in rounds],
                "p99_us": [r["p99_us"] for r in rounds],
                "statuses": [r["statuses"] for r in rounds],
                "connections": budget.connections,
            },
        ))
    return figures
