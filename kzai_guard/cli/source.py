"""Where a command reads a log from: a log directory, or a ``postgresql://`` URL.

A URL is read by copying the log (:func:`~kzai_guard.audit.pg_copy.copy_log`) into a private
temporary directory that is removed when the command ends; the file tools then run on the copy.
The copy costs a read of the whole log and about its size on local disk (plus 64 bytes a
record for the tree's hash files) for as long as the command runs.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kzai_guard.audit.pg_storage import is_postgres_url, redact_url

__all__ = ["LOG_HELP", "log_directory", "shown", "subject_keys_of"]

LOG_HELP = "the audit log: its directory, or the postgresql:// URL of its database"


@contextlib.contextmanager
def log_directory(where: str) -> Iterator[Path]:
    """The directory of the log at ``where``: itself, or a temporary copy of a URL's log."""
    if not is_postgres_url(where):
        yield Path(where)
        return
    from kzai_guard.audit.pg_copy import copy_log

    with tempfile.TemporaryDirectory(prefix="kzai-guard-log-") as scratch:
        directory = Path(scratch) / "log"
        copy_log(where, directory)
        yield directory


def subject_keys_of(where: str) -> Any:
    """The subject-key store of a log in PostgreSQL, which unseals its records' personal fields;
    ``None`` for a directory (the reader finds the store in it)."""
    if not is_postgres_url(where):
        return None
    from kzai_guard.audit.pg_subject_keys import PostgresSubjectKeys

    return PostgresSubjectKeys(where)


def shown(where: str) -> str:
    """``where`` as a report may show it: a URL without its credentials."""
    return redact_url(where) if is_postgres_url(where) else where
