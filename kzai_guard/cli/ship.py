"""``kzai-guard ship``: follow the audit log and deliver it to a SIEM, at least once.

::

    kzai-guard ship AUDIT_DIR --to SPEC --format FORMAT
                    (--public-key KEY ... --origin ORIGIN | --unverified)
                    [--cursor FILE] [--once]

``SPEC`` is ``-``, ``file:PATH``, ``udp://``, ``tcp://``, ``tls://``, ``hec+https://``,
``https://`` or ``otel:`` (see :mod:`kzai_guard.siem.destination`). The cursor (default:
``AUDIT_DIR.<format>.cursor`` next to the log directory) holds the last acknowledged seq.
A record is shipped only once a checkpoint signed by one of the public keys covers it; at a
break the cursor stays before the first record not so covered. ``--unverified`` (instead of a
key) ships chain-checked records, each marked unverified.
``SIGTERM`` or ``Ctrl-C`` finish the batch in flight, save the cursor and exit 0. Exit status:
2 when the chain is broken (the message names the seq), 3 when the receiver rejects the data
for good (a bad token, say), 1 on a usage or cursor error.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kzai_guard.cli.export import Trust, add_encoder_options, settings_from_args, trust_from_args
from kzai_guard.cli.source import LOG_HELP, log_directory
from kzai_guard.errors import KzaiGuardError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``ship`` verb."""
    from kzai_guard.siem.formats import FORMATS

    parser = subparsers.add_parser(
        "ship",
        help="follow the audit log and deliver it to a SIEM, at least once",
        description="Follow a verified audit log from a cursor and deliver every record to a "
        "SIEM; the cursor advances only after the receiver acknowledged.",
    )
    parser.add_argument("directory", metavar="AUDIT_DIR", help=LOG_HELP)
    parser.add_argument("--to", required=True, metavar="SPEC", help="where to send")
    parser.add_argument("--format", required=True, choices=FORMATS, help="the wire format")
    parser.add_argument("--cursor", type=Path, metavar="FILE", help="the cursor file")
    parser.add_argument("--once", action="store_true", help="ship what is there, then exit")
    parser.add_argument("--batch", type=int, default=500, help="events per batch (500)")
    parser.add_argument("--linger", type=float, default=0.2, help="max wait to fill a batch")
    parser.add_argument("--timeout", type=float, default=10.0, help="network timeout (10 s)")
    parser.add_argument("--max-backoff", type=float, default=30.0, help="longest retry wait")
    parser.add_argument(
        "--token-env", metavar="VAR", help="environment variable holding the HEC/webhook token"
    )
    parser.add_argument("--ca", type=Path, metavar="FILE", help="CA bundle for tls:// and https")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the receiver's certificate (tests)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--country",
        metavar="CC",
        help="ISO 3166 alpha-2 code of where the destination keeps the data (KZ-PD 12(2), 16); "
        "a destination outside KZ, or none declared, is reported",
    )
    add_encoder_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Ship; returns the exit status.

    A ``postgresql://`` log is shipped from a temporary copy, once (as ``--once``): run it from
    a timer; the cursor makes each run send only what the last one did not.
    """
    from pydantic import ValidationError

    from kzai_guard.audit.pg_storage import is_postgres_url

    trust = trust_from_args(args, "ship")
    if trust is None:
        return 1
    try:
        _report_transfer(args.to, args.country)
    except ValidationError:
        print(
            f"kzai-guard ship: --country {args.country!r} is not an ISO 3166 alpha-2 code "
            "such as KZ",
            file=sys.stderr,
        )
        return 1
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"kzai-guard ship: ${args.token_env} is not set", file=sys.stderr)
            return 1
    by_url = is_postgres_url(args.directory)
    if by_url and args.cursor is None:
        print("kzai-guard ship: a postgresql:// log needs --cursor FILE", file=sys.stderr)
        return 1
    try:
        with log_directory(args.directory) as directory:
            return _ship(args, trust, directory.resolve(), token, follow=not (args.once or by_url))
    except KzaiGuardError as exc:  # the copy of a URL's log failed
        print(f"kzai-guard ship: {exc}", file=sys.stderr)
        return 1


def _ship(
    args: argparse.Namespace, trust: Trust, directory: Path, token: str | None, follow: bool
) -> int:
    """Ship the log in ``directory``; returns the exit status."""
    from pydantic import ValidationError

    from kzai_guard.audit.reader import ChainBroken
    from kzai_guard.siem import Backoff, Shipper, TransportError, make_encoder, open_destination

    cursor = args.cursor or directory.with_name(f"{directory.name}.{args.format}.cursor")
    try:
        encoder = make_encoder(args.format, settings_from_args(args))
        destination = open_destination(
            args.to,
            encoder,
            token=token,
            cafile=args.ca,
            insecure=args.insecure,
            timeout=args.timeout,
        )
        backoff = Backoff(initial=min(0.5, args.max_backoff), maximum=args.max_backoff)
        reporter = _Reporter(quiet=args.quiet)
        shipper = Shipper(
            directory,
            destination,
            cursor=cursor,
            public_keys=trust.keyring,
            unverified=trust.keyring is None,
            origin=trust.origin,
            batch_size=args.batch,
            linger=args.linger,
            backoff=backoff,
            follow=follow,
            on_progress=reporter,
        )
    except (ValidationError, ValueError, KzaiGuardError) as exc:
        print(f"kzai-guard ship: {exc}", file=sys.stderr)
        return 1

    def on_signal(signum: int, frame: object) -> None:
        shipper.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        shipper.run()
    except ChainBroken as exc:
        print(
            f"kzai-guard ship: ALARM: {exc}; shipping stopped, last delivered seq "
            f"{shipper.shipped_seq}",
            file=sys.stderr,
        )
        return 2
    except TransportError as exc:
        print(f"kzai-guard ship: the receiver refuses the data: {exc}", file=sys.stderr)
        return 3
    except (KzaiGuardError, OSError) as exc:
        print(f"kzai-guard ship: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    reporter.final(shipper.shipped_seq)
    return 0


class _Reporter:
    """Progress lines on stderr: at most one a second, and every retry."""

    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet
        self._last = 0.0
        self._shipped = 0

    def __call__(self, progress: Any) -> None:
        self._shipped = progress.shipped
        if self._quiet:
            return
        now = time.monotonic()
        if progress.retrying is not None:
            print(
                f"kzai-guard ship: delivery failed ({progress.retrying}); "
                f"retrying in {progress.retry_in:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        elif now - self._last >= 1.0:
            self._last = now
            print(
                f"kzai-guard ship: {progress.shipped} shipped, last seq {progress.shipped_seq}",
                file=sys.stderr,
                flush=True,
            )

    def final(self, seq: int | None) -> None:
        if not self._quiet:
            print(
                f"kzai-guard ship: stopped; {self._shipped} shipped, cursor at seq {seq}",
                file=sys.stderr,
                flush=True,
            )


def _report_transfer(to: str, country: str | None) -> None:
    """Print a finding when the destination declares no country or is outside Kazakhstan."""
    from kzai_guard.core.transfers import Destination, transfer_findings

    for article, finding in transfer_findings([Destination(name=to, country=country)]):
        print(f"kzai-guard ship: finding ({article}): {finding}", file=sys.stderr)
