"""Open a store from a URL: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs.db``,
``postgresql://...``."""

from __future__ import annotations

from kzai_guard.errors import ConfigurationError
from kzai_guard.stores.base import Store

__all__ = ["open_store"]


def open_store(url: str) -> Store:
    """The store that ``url`` names; an unknown scheme is a :class:`ConfigurationError`."""
    from kzai_guard.stores.sqlite import open_sqlite

    if url == "memory://":
        return open_sqlite(None)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise ConfigurationError("sqlite store URL needs a path: 'sqlite:///kzai-guard.db'")
        return open_sqlite(path)
    if url.startswith(("postgresql://", "postgres://")):
        from kzai_guard.stores.postgres import open_postgres

        return open_postgres(url)
    raise ConfigurationError(
        f"unknown store URL {url!r}: use 'memory://', 'sqlite:///PATH' or 'postgresql://...'"
    )
