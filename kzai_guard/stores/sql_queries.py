"""What the SQL store's groups of methods stand on: its own reads and writes.

The reviewer's work (:mod:`~kzai_guard.stores.review_work`), the data bases
(:mod:`~kzai_guard.stores.data_bases`) and the deadline findings
(:mod:`~kzai_guard.stores.deadline_findings`) are written as mixins of
:class:`~kzai_guard.stores.sql.SqlStore`, which gives them ``_read`` and ``_write``; this base
declares those two for the type checker, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

__all__ = ["SqlQueries"]


class SqlQueries:
    """A group of store methods over the SQL store's ``_read`` and ``_write``."""

    if TYPE_CHECKING:

        def _read(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        def _write(
            self,
            steps: Sequence[tuple[str, Sequence[Any]]],
            change: Any = None,
            *,
            select: tuple[str, Sequence[Any]] | None = None,
            check: Any = None,
        ) -> list[tuple[Any, ...]]: ...
