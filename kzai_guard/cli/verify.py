"""``kzai-guard verify``: check a whole audit log (a directory, or a ``postgresql://`` URL).

Exit status 0 when every line, the hash chain, every checkpoint's Merkle root and every
signature hold; 1 naming the first bad sequence number and what is wrong otherwise; 2 when the
command cannot run (no such directory, no usable key, no expected origin: ``--origin`` or a
``--public-key`` bound to one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.witnessed import verify_witnessed
from kzai_guard.cli.source import LOG_HELP, log_directory, shown
from kzai_guard.cli.trust import (
    add_origin_argument,
    add_witness_arguments,
    bound_keys,
    expected_origin,
    held_checkpoints,
    witness_policy,
)
from kzai_guard.errors import AuditLogError, ConfigurationError

__all__ = ["keyring_from_args", "register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``verify`` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="verify an audit log: lines, chain, checkpoints, signatures",
        description=(
            "Check every record line, the hash chain, the Merkle root of every checkpoint and "
            "every signature. Exit 0 only if all hold."
        ),
    )
    parser.add_argument("directory", metavar="AUDIT_DIR", help=LOG_HELP)
    add_key_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="accept records after the newest checkpoint (a live log)",
    )
    add_origin_argument(parser)
    add_witness_arguments(parser)
    parser.add_argument(
        "--witnessed-size",
        type=int,
        metavar="SIZE",
        help="count the cosignatures of the checkpoint of this size (default: the newest)",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="FILE_OR_URL",
        help="a signed (cosigned) checkpoint kept elsewhere, a file or a witness's "
        "checkpoint URL: the log must extend it; repeatable",
    )
    parser.set_defaults(func=run)


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """The repeated ``--public-key`` option."""
    parser.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="KEY",
        help="trusted checkpoint key: a .pub file, a PEM public key or a vkey; repeat for old keys",
    )


def keyring_from_args(keys: list[str], directory: Path | None = None) -> Keyring:
    """The keyring from ``--public-key`` values; without any, the demo keys in the log dir."""
    if keys:
        return bound_keys(keys)[0]
    local = sorted((directory / "keys").glob("*.pub")) if directory is not None else []
    if not local:
        raise ConfigurationError("give at least one --public-key")
    print(
        f"kzai-guard: no --public-key given; trusting the keys stored in {directory}/keys "
        "(this proves integrity only against accidents, not against whoever can write there)",
        file=sys.stderr,
    )
    return Keyring.load(local)


def run(args: argparse.Namespace) -> int:
    """Verify; print a summary (or JSON) and return the exit status."""
    try:
        bound = bound_keys(args.public_key)[1] if args.public_key else None
        origin = expected_origin(args.origin, bound)
        with log_directory(args.directory) as directory:
            keyring = keyring_from_args(args.public_key, directory)
            policy = witness_policy(args.witness_key, args.witnesses)
            progress = _progress if sys.stderr.isatty() and not args.json else None
            report = verify_witnessed(
                directory,
                keyring,
                origin=origin,
                policy=policy,
                held=held_checkpoints(args.checkpoint),
                witnessed_size=args.witnessed_size,
                allow_unsigned_tail=args.allow_unsigned_tail,
                progress=progress,
            )
        report.directory = shown(args.directory)
    except (AuditLogError, ConfigurationError, OSError, ValueError) as exc:
        print(f"kzai-guard verify: {exc}", file=sys.stderr)
        return 2
    if progress is not None:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    elif report.problem is None:
        last = report.first_seq + report.records - 1
        print(
            f"OK: {report.records} records (seq {report.first_seq}..{last}), "
            f"{report.checkpoints} checkpoints, signed up to size {report.signed_size} by "
            f"{', '.join(report.key_names) or 'no key'}"
            + (
                f"; size {report.witnessed_size} cosigned by {', '.join(report.cosigners)}"
                if report.witnessed_size is not None
                else ""
            )
            + (
                f"; extends the {len(args.checkpoint)} checkpoint(s) held"
                if args.checkpoint
                else ""
            )
        )
    else:
        p = report.problem
        print(f"FAILED at seq {p.seq}: {p.kind}: {p.message}")
    return 0 if report.ok else 1


def _progress(done: int, total: int) -> None:
    pct = 100.0 * done / total if total else 100.0
    print(f"\rverifying: {pct:5.1f}% of {total / 1e6:.1f} MB", end="", file=sys.stderr)
