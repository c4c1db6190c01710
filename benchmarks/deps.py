"""What the suite needs beyond the library itself: the ``bench`` extra of ``pyproject.toml``."""

from __future__ import annotations

from importlib import util

REQUIREMENTS: tuple[str, ...] = (
    "fastapi>=0.110",
    "uvicorn[standard]>=0.27",
    "opentelemetry-sdk>=1.25",
    "ai-audit-trail>=0.4",
)
"""The ``bench`` extra, as pip requirement strings."""

MODULES: dict[str, str] = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "uvloop": "uvicorn[standard]",
    "httptools": "uvicorn[standard]",
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
