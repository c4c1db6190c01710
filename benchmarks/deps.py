"""What the suite needs beyond the library itself: the ``bench`` extra of ``pyproject.toml``."""

from __future__ import annotations

from importlib import util

REQUIREMENTS: tuple[str, ...] = (
    "fastapi>=0.110",
    "uvicorn>=0.27",
    "uvloop>=0.19; sys_platform != 'win32'",
    "httptools>=0.6",
    "opentelemetry-sdk>=1.25",
    "ai-audit-trail>=0.4",
)
"""The ``bench`` extra, as pip requirement strings."""

MODULES: dict[str, str] = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "uvloop": "uvloop>=0.19; sys_platform != 'win32'",
    "httptools": "httptools>=0.6",
    "opentelemetry.sdk": "opentelemetry-sdk",
    "ai_audit": "ai-audit-trail",
    "kzai_guard.audit.record": "kzai-guard (pip install -e .)",
}


def missing() -> list[str]:
    """The requirements whose module cannot be found."""
    out: list[str] = []
    for module, requirement in MODULES.items():
        try:
            found = util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found and requirement not in out:
            out.append(requirement)
    return out


def install() -> int:
    """``pip install -e .`` with every requirement of the bench extra; returns pip's status."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "pip", "install", "--quiet", "-e", str(root), *REQUIREMENTS]
    return subprocess.call(command)


if __name__ == "__main__":
    import sys

    sys.exit(install() if missing() else 0)
