"""Whether the optional C extensions may be used.

``kzai_guard.audit._lines`` (the audit log's line encoder) and ``kzai_guard._ids`` (decision
ids) are built at install time where a C compiler is there; each has a Python twin that gives
the same results. Setting :data:`PUREPYTHON_VARIABLE` before the import uses the twins only.
"""

from __future__ import annotations

import importlib
import os
import types

__all__ = ["PUREPYTHON_VARIABLE", "native_module", "purepython"]

PUREPYTHON_VARIABLE = "KZAI_GUARD_PUREPYTHON"
"""Set it (to anything but ``0``) before the import to run the Python code only."""


def purepython() -> bool:
    """True when :data:`PUREPYTHON_VARIABLE` turns the C extensions off."""
    return os.environ.get(PUREPYTHON_VARIABLE, "") not in ("", "0")


def native_module(name: str) -> types.ModuleType | None:
    """The C extension ``name``, or ``None`` where it was not built or is turned off."""
    if purepython():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:  # built without a C compiler (or, for the encoder, OpenSSL's headers)
        return None
