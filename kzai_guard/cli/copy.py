"""``kzai-guard copy URL DIR``: copy an audit log out of PostgreSQL into the file layout.

The copy (``origin``, segments, checkpoints, tree hash files) is what ``kzai-guard verify``,
``prove``, ``consistency`` and ``export`` read, and what an auditor is given. Sealed personal
fields stay sealed: the subject keys stay in the database. Exit status 0 on success, 2 when the
log cannot be read or DIR is not new or empty.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kzai_guard.errors import KzaiGuardError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``copy`` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "copy",
        help="copy an audit log from PostgreSQL into a log directory",
        description=(
            "Copy the audit log kept in PostgreSQL (entries, checkpoints, origin) into a new "
            "directory in the on-disk format, one consistent snapshot while writers go on."
        ),
    )
    parser.add_argument("url", metavar="URL", help="postgresql:// URL of the log's database")
    parser.add_argument("directory", metavar="DIR", help="a new (or empty) directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Copy; print what was written and return the exit status."""
    from kzai_guard.audit.pg_copy import copy_log
    from kzai_guard.audit.pg_storage import is_postgres_url

    if not is_postgres_url(args.url):
        print(f"kzai-guard copy: {args.url!r} is not a postgresql:// URL", file=sys.stderr)
        return 2
    try:
        copied = copy_log(args.url, args.directory)
    except (KzaiGuardError, OSError) as exc:
        print(f"kzai-guard copy: {exc}", file=sys.stderr)
        return 2
    print(
        f"copied {copied.records} records, {copied.checkpoints} checkpoints in "
        f"{copied.segments} segments of log {copied.origin} to {args.directory}"
    )
    return 0
