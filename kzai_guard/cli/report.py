"""``kzai-guard report``: the compliance officer's view of a period, as one HTML file.

::

    kzai-guard report LOG --config FILE [--store URL] [--since T] [--until T]
                      [--lang kk|ru|en] [--out FILE] [--pdf FILE] [--public-key KEY ...]
                      [--origin ORIGIN]
                      [--witness-key KEY ... [--witnesses N]]

Built from the verified audit trail (records with ``since <= time < until``; ``T`` as for
``export``, default the 30 days before now), the review tickets and disparity counts in the
store (``--store``, default the ``[guard] store`` of the file) and the policies and
``[[destination]]`` tables of ``--config``. ``LOG`` is the log's directory or the
``postgresql://`` URL of its database (read through a private copy, as ``verify`` does); the
store may be a ``postgresql://`` URL too. The witnesses' cosignatures kept with the log are
shown, checked against the ``--witness-key`` keys when given. Charts need matplotlib
(``kzai-guard[report]``); ``--pdf`` also prints it as PDF with headless Chromium.
Exit status: 0 when written, 1 on a usage error, 2 when the trail did not verify (the report is
written all the same, and says so).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kzai_guard.cli.export import parse_time
from kzai_guard.cli.source import LOG_HELP, log_directory, subject_keys_of
from kzai_guard.cli.trust import (
    add_origin_argument,
    add_witness_arguments,
    bound_keys,
    expected_origin,
    witness_policy,
)
from kzai_guard.cli.verify import add_key_arguments, keyring_from_args
from kzai_guard.core.vocabulary import Language
from kzai_guard.errors import KzaiGuardError

__all__ = ["register", "run"]

_DEFAULT_DAYS = 30


def register(subparsers: Any) -> None:
    """Add the ``report`` verb."""
    parser = subparsers.add_parser(
        "report",
        help="write the compliance report of a period as one HTML file",
        description="Inventory, decisions, objections and reviews, explanations, disparity, "
        "the trail's integrity and findings with their articles, in kk, ru or en.",
    )
    parser.add_argument("log", metavar="LOG", help=LOG_HELP)
    parser.add_argument("--config", required=True, type=Path, help="the TOML policy file")
    parser.add_argument("--store", help="the store URL (default: [guard] store of the file)")
    parser.add_argument("--since", type=parse_time, metavar="T", help="first time (inclusive)")
    parser.add_argument("--until", type=parse_time, metavar="T", help="last time (exclusive)")
    parser.add_argument(
        "--lang", choices=[lang.value for lang in Language], default="en", help="language"
    )
    parser.add_argument("--out", type=Path, default=Path("compliance-report.html"))
    parser.add_argument(
        "--pdf", type=Path, metavar="FILE", help="also print it to FILE as PDF (needs Chromium)"
    )
    add_key_arguments(parser)
    add_origin_argument(parser)
    add_witness_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; returns the exit status."""
    from kzai_guard.config import load_config, load_destinations
    from kzai_guard.guard import DEFAULT_STORE
    from kzai_guard.report.build import build_report

    now = datetime.now(UTC)
    until = _moment(args.until) if args.until is not None else now
    since = _moment(args.since) if args.since is not None else until - timedelta(_DEFAULT_DAYS)
    try:
        policies, settings = load_config(args.config)
        destinations = load_destinations(args.config)
        witnesses = witness_policy(args.witness_key, args.witnesses)
        bound = bound_keys(args.public_key)[1] if args.public_key else None
        origin = expected_origin(args.origin, bound)
        subject_keys = subject_keys_of(args.log)
        closing = contextlib.closing if subject_keys is not None else contextlib.nullcontext
        with log_directory(args.log) as directory, closing(subject_keys):
            keyring = keyring_from_args(args.public_key, directory)
            html, trail_ok = build_report(
                directory,
                policies,
                destinations,
                store_url=args.store or settings.get("store", DEFAULT_STORE),
                keyring=keyring,
                since=since,
                until=until,
                language=Language(args.lang),
                now=now,
                origin=origin,
                witnesses=witnesses,
                subject_keys=subject_keys,
            )
    except (KzaiGuardError, OSError, ValueError) as exc:
        print(f"kzai-guard report: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(html, encoding="utf-8")
    print(f"kzai-guard report: wrote {args.out}", file=sys.stderr)
    if args.pdf is not None:
        from kzai_guard.report.pdf import print_pdf

        try:
            print_pdf(html, args.pdf)
        except (KzaiGuardError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"kzai-guard report: {exc}", file=sys.stderr)
            return 1
        print(f"kzai-guard report: wrote {args.pdf}", file=sys.stderr)
    return 0 if trail_ok else 2


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC)
