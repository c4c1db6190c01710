"""``kzai-guard repair``: show, and move aside, what no writer of an audit log explains.

::

    kzai-guard repair AUDIT_DIR --show|--quarantine [--public-key KEY ...] [--checkpoint-every N]

A log refuses to open when its directory holds what its writers did not write (see
:mod:`kzai_guard.audit.adoption`). ``--show`` says what differs and which records are still
confirmed by a trusted checkpoint; ``--quarantine`` moves everything after those into
``AUDIT_DIR/quarantine/<time>/`` (nothing is deleted) so that the log opens again.
``--checkpoint-every`` is the writers' setting (default 10000). ``AUDIT_DIR`` may be the
``postgresql://`` URL of a log in PostgreSQL: ``--quarantine`` then moves the unexplained rows
into the table ``kzg_log_quarantine`` (:mod:`kzai_guard.audit.pg_repair`). Exit status: 0
when nothing is unexplained (or it was moved aside), 1 when ``--show`` found something, 2 when
the command cannot run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kzai_guard.cli.verify import add_key_arguments, keyring_from_args
from kzai_guard.errors import AuditLogError, ConfigurationError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``repair`` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "repair",
        help="show or quarantine what no writer of an audit log explains",
        description="Compare an audit log with its signed checkpoints; show what differs, or "
        "move the unexplained part aside into AUDIT_DIR/quarantine/ for investigation.",
    )
    parser.add_argument(
        "directory", metavar="AUDIT_DIR", help="the log directory, or its postgresql:// URL"
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--show", action="store_true", help="say what differs; change nothing")
    action.add_argument("--quarantine", action="store_true", help="move the unexplained part aside")
    add_key_arguments(parser)
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=10_000,
        metavar="N",
        help="the writers' checkpoint_every: the longest unsigned tail a crash leaves (10000)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Survey (and quarantine); returns the exit status."""
    from kzai_guard.audit.pg_storage import is_postgres_url
    from kzai_guard.audit.quarantine import quarantine, survey

    if is_postgres_url(args.directory):
        return _run_postgres(args)
    directory = Path(args.directory)
    try:
        if not directory.is_dir():
            raise AuditLogError(f"{directory} is not a directory")
        keyring = keyring_from_args(args.public_key, directory)
        found = survey(directory, keyring, tail_limit=args.checkpoint_every)
        print(found.report())
        if found.problem is None:
            return 0
        if args.show:
            return 1
        target = quarantine(found)
    except (AuditLogError, ConfigurationError, OSError, ValueError) as exc:
        print(f"kzai-guard repair: {exc}", file=sys.stderr)
        return 2
    print(f"moved aside into {target}; the log now ends at seq {found.keep - 1}")
    return 0


def _run_postgres(args: argparse.Namespace) -> int:
    """Survey (and quarantine) a log in PostgreSQL."""
    from kzai_guard.audit.pg_repair import quarantine_postgres, survey_postgres
    from kzai_guard.audit.pg_storage import connect_postgres, redact_url

    where = redact_url(args.directory)
    try:
        keyring = keyring_from_args(args.public_key)
        conn = connect_postgres(args.directory, connect_timeout=10)
    except (ConfigurationError, ValueError) as exc:
        print(f"kzai-guard repair: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"kzai-guard repair: cannot reach {where}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.show:
            found = survey_postgres(conn, where, keyring, tail_limit=args.checkpoint_every)
        else:
            found = quarantine_postgres(conn, where, keyring, tail_limit=args.checkpoint_every)
    except Exception as exc:
        print(f"kzai-guard repair: cannot read the audit log at {where}: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    print(found.report())
    if found.problem is None:
        return 0
    if args.show:
        return 1
    print(f"moved aside into kzg_log_quarantine; the log now ends at seq {found.keep - 1}")
    return 0
