"""The reviewer's console: server-rendered pages (Jinja2) in Kazakh, Russian and English.

Mounted by ``guard.install(app)`` under ``{reviews_prefix}/console/`` when Jinja2 is installed
(extra ``console``); ``review_console=True`` makes it required, ``False`` leaves it out.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING

from kzai_guard.errors import ConfigurationError

if TYPE_CHECKING:
    from kzai_guard.console.pages import Console
    from kzai_guard.guard import Guard

__all__ = ["console_for"]


def console_for(guard: Guard) -> Console | None:
    """The console of ``guard``, or ``None`` when it is switched off or Jinja2 is missing.

    Raises :class:`~kzai_guard.errors.ConfigurationError` when ``review_console=True`` and
    Jinja2 is not installed.
    """
    wanted = guard.settings.review_console
    if wanted is False:
        return None
    if find_spec("jinja2") is None:
        if wanted:
            raise ConfigurationError(
                "review_console=True needs Jinja2: pip install 'kzai-guard[console]', or set "
                "review_console=False"
            )
        return None
    from kzai_guard.console.pages import Console

    return Console(guard)
