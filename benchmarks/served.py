"""Section 1b: the same endpoint through a real server, uvicorn on 127.0.0.1.

Every variant runs in its own uvicorn process pinned to the server core; the load generator
(:mod:`benchmarks.loadgen`) runs in another process on another core and drives one server at a
time, in interleaved rotating rounds. A figure is the server process's CPU time (all its
threads, from /proc, counted until the process is idle again after the round) per request
served, so work a server leaves queued, such as the audit writer's backlog, is charged to it;
the guard's cost is guarded minus bare. Throughput and client-side latency percentiles are kept
in the JSON.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import orjson

from benchmarks import apps
from benchmarks.budget import Budget
from benchmarks.child import ROOT
from benchmarks.measure import Figure, Sample, Target, rotated, unavailable

SECTION = "served"
THROUGHPUT = Target(0.8, "min", on="ratio", text=">= 0.8x bare throughput")
PACED_RATE = 900.0
"""Requests per second of the paced rounds: a moderate load, well under either app's
saturation on one core."""
PACED_P99 = Target(1.1, "max", on="ratio", text=f"p99 <= 1.1x bare at {PACED_RATE:.0f} req/s")
"""FastAPI under uvicorn at :data:`PACED_RATE`: the guarded decision's 99th-percentile
latency, seen by the client, at most 1.1 times the bare app's."""
"""FastAPI under uvicorn: the guarded decision with the signed log serves at least 0.8 times
the bare app's requests per second at saturation."""
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
HAS_PROC = os.path.exists("/proc/self/stat")
"""Without /proc the figure falls back to wall time per request at saturation."""
VARIANTS: tuple[tuple[str, str], ...] = (
    ("bare", "api"),
    ("bare", "sdk"),
    ("guarded", "api"),
    ("guarded", "sdk"),
    ("least", "api"),
    ("basehttp", "api"),
)


@dataclass
class Served:
    """A running uvicorn child."""

    port: int
    pid: int
    info: dict[str, Any]


class ServerFailed(RuntimeError):
    """The server child exited before it listened."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


class Server:
    """A uvicorn child: launched at once, waited for later, so that servers boot in parallel."""

    def __init__(self, framework: str, variant: str, otel: str, core: int | None) -> None:
        args = [sys.executable, "-m", "benchmarks.server", "--framework", framework]
        args += ["--variant", variant, "--otel", otel]
        if core is not None:
            args += ["--core", str(core)]
        self._proc = subprocess.Popen(
            args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def ready(self) -> Served:
        """Wait until the child listens; raises :class:`ServerFailed` if it exited instead."""
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line.startswith("{"):
            self._proc.wait(timeout=10)
            err = (self._proc.stderr.read() if self._proc.stderr else "").strip().splitlines()
            raise ServerFailed(" | ".join(err[-6:]) or f"exit {self._proc.returncode}")
        info = orjson.loads(line)
        return Served(info["port"], self._proc.pid, info)

    def terminate(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()

    def stop(self) -> None:
        self.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@contextmanager
def _servers(core: int | None) -> Iterator[dict[str, Server]]:
    """Every server of every framework, launched together; keys ``framework/variant/otel``."""
    launched: dict[str, Server] = {}
    try:
        for framework in apps.FRAMEWORKS:
            for variant, otel in VARIANTS:
                if variant in ("guarded", "least") and apps.guard_missing():
                    continue
                key = f"{framework}/{variant}/{otel}"
                launched[key] = Server(framework, variant, otel, core)
        yield launched
    finally:
        for server in launched.values():
            server.terminate()
        for server in launched.values():
            server.stop()


class LoadGenerator:
    """The long-lived load generator child, driven one round at a time."""

    def __init__(self, core: int | None) -> None:
        args = [sys.executable, "-m", "benchmarks.loadgen"]
        if core is not None:
            args += ["--core", str(core)]
        self._proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.core = core

    def round(
        self, port: int, seconds: float, connections: int, rate: float | None = None
    ) -> dict[str, Any]:
        """One round against ``port``: at saturation, or paced at ``rate`` requests/s."""
        stdin: IO[str] | None = self._proc.stdin
        stdout: IO[str] | None = self._proc.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the load generator has no pipes")
        command = {
            "port": port,
            "path": apps.PATH,
            "headers": apps.HEADERS,
            "connections": connections,
            "duration": seconds,
            "warmup": min(0.3, seconds / 3),
        }
        if rate is not None:
            command["rate"] = rate
        stdin.write(orjson.dumps(command).decode() + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited ({self._proc.poll()})")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def probe(self, port: int, patience: float = 60.0) -> dict[str, Any]:
        """Short rounds until the server answers at all (it may still be starting up)."""
        deadline = time.monotonic() + patience
        while True:
            answer = self.round(port, 0.05, 1)
            if "error" in answer or answer["requests"] or time.monotonic() > deadline:
                return answer

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def settled_cpu_seconds(pid: int, quiet: float = 0.05, patience: float = 10.0) -> float:
    """CPU time once the process has gone idle: work it queued during a round (the audit
    writer's backlog) is charged to that round, not to the next server's."""
    deadline = time.monotonic() + patience
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now - last < quiet * 0.05:
            return now
        last = now
    return last


def run(budget: Budget, layout: dict[str, int | None]) -> list[Figure]:
    figures: list[Figure] = []
    gen = LoadGenerator(layout["client"])
    try:
        with _servers(layout["server"]) as launched:
            up, failures = _start_all(launched, gen)
            for framework in apps.FRAMEWORKS:
                figures += _framework(framework, budget, layout, gen, up, failures)
    finally:
        gen.close()
    return figures


def _start_all(
    launched: dict[str, Server], gen: LoadGenerator
) -> tuple[dict[str, Served], dict[str, str]]:
    """Wait until every server answers before any is measured: a server still booting on the
    server core would take time from the one being measured."""
    up: dict[str, Served] = {}
    failures: dict[str, str] = {}
    for key, server in launched.items():
        try:
            served = server.ready()
        except ServerFailed as exc:
            failures[key] = f"server did not start: {exc}"
            continue
        probe = gen.probe(served.port)
        if "error" in probe or set(probe["statuses"]) != {"200"}:
            failures[key] = f"server answered {probe.get('statuses') or probe}"
            continue
        up[key] = served
    return up, failures


def _name(framework: str, variant: str, otel: str) -> str:
    what = {
        "bare": "bare app",
        "guarded": "guarded decision",
        "least": "least guard, nothing stored",
        "basehttp": "BaseHTTPMiddleware no-op",
    }[variant]
    return f"uvicorn {framework}: {what} (otel {otel})"


def _framework(
    framework: str,
    budget: Budget,
    layout: dict[str, int | None],
    gen: LoadGenerator,
    up: dict[str, Served],
    all_failures: dict[str, str],
) -> list[Figure]:
    results: dict[str, list[dict[str, Any]]] = {}
    failures: dict[str, str] = {}
    info: dict[str, Any] = {}
    servers: dict[str, Served] = {}
    for variant, otel in VARIANTS:
        key = f"{variant}/{otel}"
        full = f"{framework}/{key}"
        if full in up:
            servers[key] = up[full]
            info = up[full].info
            results[key] = []
        else:
            failures[key] = all_failures.get(full) or apps.guard_missing() or "not launched"

    def once(key: str) -> Any:
        def go() -> float:
            server = servers[key]
            if not HAS_PROC:
                answer = gen.round(server.port, budget.server_seconds, budget.connections)
                results[key].append(answer)
                return 1e6 * float(answer["seconds"]) / max(1, int(answer["requests"]))
            before = cpu_seconds(server.pid)
            answer = gen.round(server.port, budget.server_seconds, budget.connections)
            answer["cpu_s"] = settled_cpu_seconds(server.pid) - before
            results[key].append(answer)
            done = max(1, int(answer["requests"]) + int(answer["warmup_requests"]))
            return 1e6 * float(answer["cpu_s"]) / done

        return go

    samples = rotated({key: once(key) for key in servers}, budget.server_rounds)

    if "bare/api" not in samples:
        raise RuntimeError(f"the bare {framework} server could not be measured: {failures}")
    figures: list[Figure] = []
    for variant, otel in VARIANTS[1:]:
        key = f"{variant}/{otel}"
        # each variant beside the bare app with the same OpenTelemetry configuration; the
        # bare app with the SDK beside the bare app without it (the SDK's own cost)
        same = f"bare/{otel}"
        base_key = same if variant != "bare" and same in samples else "bare/api"
        bare = Sample.of(samples[base_key])
        target = None
        if key not in samples:
            figures.append(
                unavailable(
                    SECTION,
                    _name(framework, variant, otel),
                    "us/req",
                    failures.get(key, "not measured"),
                    target=target,
                )
            )
            continue
        rounds = results[key]
        busy = max(r["client_busy"] for r in results["bare/api"] + rounds)
        measure = "server CPU per request" if HAS_PROC else "wall time per request at saturation"
        note = (
            f"{measure}; server {info.get('loop')}+{info.get('http')}, core {layout['server']}; "
            f"load generator core {gen.core}, busy up to {busy:.0%}"
        )
        if busy > 0.9:
            note += " (client-bound: added time understated)"
        figures.append(
            Figure(
                SECTION,
                _name(framework, variant, otel),
                "us/req",
                subject_label=variant,
                subject=Sample.of(samples[key]),
                baseline_label=f"bare (otel {base_key.split('/')[1]})",
                baseline=bare,
                target=target,
                note=note,
                extra={
                    "req_per_s": [r["requests"] / r["seconds"] for r in rounds],
                    "bare_req_per_s": [r["requests"] / r["seconds"] for r in results[base_key]],
                    "p50_us": [r["p50_us"] for r in rounds],
                    "p99_us": [r["p99_us"] for r in rounds],
                    "statuses": [r["statuses"] for r in rounds],
                    "connections": budget.connections,
                },
            )
        )
    if framework == "fastapi" and "guarded/api" in samples:
        rate = {
            k: [r["requests"] / r["seconds"] for r in results[k]]
            for k in ("guarded/api", "bare/api")
        }
        figures.append(
            Figure(
                SECTION,
                f"uvicorn {framework}: guarded decision, throughput at saturation (otel api)",
                "req/s",
                subject_label="guarded",
                subject=Sample.of(rate["guarded/api"]),
                baseline_label="bare",
                baseline=Sample.of(rate["bare/api"]),
                target=THROUGHPUT,
                note=f"{budget.connections} keep-alive connections, benchmarks/loadgen.py",
            )
        )
        figures.append(_paced_p99(framework, budget, gen, servers))
    return figures


def _paced_p99(
    framework: str, budget: Budget, gen: LoadGenerator, servers: dict[str, Served]
) -> Figure:
    """The guarded and bare apps at :data:`PACED_RATE`, in interleaved rounds: the client's
    p99 latency, each request timed from when it was due."""
    rate = PACED_RATE if budget.server_seconds >= 1 else PACED_RATE / 10
    connections = min(budget.connections, 8)

    def once(key: str) -> Any:
        def go() -> float:
            answer = gen.round(servers[key].port, budget.server_seconds, connections, rate)
            if answer.get("p99_us") is None:
                raise RuntimeError(f"no answers at {rate} req/s: {answer}")
            return float(answer["p99_us"])

        return go

    samples = rotated({key: once(key) for key in ("bare/api", "guarded/api")}, budget.server_rounds)
    return Figure(
        SECTION,
        f"uvicorn {framework}: guarded decision, p99 latency at {rate:.0f} req/s (otel api)",
        "us",
        subject_label="guarded",
        subject=Sample.of(samples["guarded/api"]),
        baseline_label="bare",
        baseline=Sample.of(samples["bare/api"]),
        target=PACED_P99 if rate == PACED_RATE else None,
        note=f"{connections} keep-alive connections paced by benchmarks/loadgen.py, latency "
        "from each request's due time",
    )
