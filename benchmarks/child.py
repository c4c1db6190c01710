"""Run one part of the suite in a fresh Python process and read back its JSON answer.

Parts that need a clean interpreter (OpenTelemetry's global provider, peak memory) run this
way; the child prints one JSON object as its last line on stdout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent


class ChildFailed(RuntimeError):
    """The child process exited with an error or printed no JSON answer."""


def run_child(module: str, args: list[str], timeout: float) -> dict[str, Any]:
    """``python -m module *args`` in the project root; returns the JSON it printed last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
        raise ChildFailed(f"{module} exited {proc.returncode}: " + " | ".join(tail))
    answer: dict[str, Any] = orjson.loads(lines[-1])
    return answer


def emit(answer: dict[str, Any]) -> None:
    """What a child calls last: print its answer as one JSON line."""
    sys.stdout.write(orjson.dumps(answer).decode() + "\n")
    sys.stdout.flush()
