"""Whether the optional C extensions may be used.

``kzai_guard.audit._lines`` (the audit log's line encoder) and ``kzai_guard._ids`` (decision
ids) are built at install time where a C compiler is there; each has a Python twin that gives
the same results. Setting :data:`PUREPYTHON_VARIABLE` before the import uses the twins only.
"""

from __future__ import annotations

import os

__all__ = ["PUREPYTHON_VARIABLE", "purepython"]

PUREPYTHON_VARIABLE = "KZAI_GUARD_PUREPYTHON"
"""Set it (to anything but ``0``) before the import to run the Python code only."""


def purepython() -> bool:
    """True when :data:`PUREPYTHON_VARIABLE` turns the C extensions off."""
    return os.environ.get(PUREPYTHON_VARIABLE, "") not in ("", "0")
