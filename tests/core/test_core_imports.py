"""The core knows no web framework, database driver, network client or telemetry library.

Each module is imported in a fresh interpreter without the package's ``__init__`` (which wires
the adapters together), so that only what the core itself pulls in is loaded.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import kzai_guard
import kzai_guard.core

FORBIDDEN = (
    "anyio",
    "fastapi",
    "httpx",
    "opentelemetry",
    "psycopg",
    "redis",
    "sqlite3",
    "starlette",
    "uvicorn",
)
PACKAGE_DIR = str(Path(kzai_guard.__file__).parent)
CORE_MODULES = sorted(m.name for m in pkgutil.iter_modules(kzai_guard.core.__path__))

IMPORT_ALONE = """
import importlib, json, sys, types
package = types.ModuleType("kzai_guard")
package.__path__ = [sys.argv[1]]
sys.modules["kzai_guard"] = package
importlib.import_module("kzai_guard.core." + sys.argv[2])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("module", CORE_MODULES)
def test_a_core_module_imports_no_framework_driver_or_telemetry(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, PACKAGE_DIR, module],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    assert sorted(loaded & set(FORBIDDEN)) == []
