"""``kzai-guard export``: write the verified audit log once in a SIEM format.

::

    kzai-guard export AUDIT_DIR --format cef|leef|syslog|ocsf|ecs|hec|jsonl
                      (--public-key KEY ... --origin ORIGIN | --unverified)
                      [--since T] [--until T] [--out FILE]

``T`` is an RFC 3339 timestamp (``2026-01-31T00:00:00Z``) or Unix seconds; records with
``since <= time < until`` are written, one message per line, each carrying the log's origin.
A record is written only once a checkpoint signed by one of the public keys covers it and
matches; records after the newest checkpoint are left out (and named on stderr). Without a
public key the command refuses, unless ``--unverified`` is given: then only the hash chain is
checked and every event is marked unverified. With a public key it also needs the log's
expected origin, ``--origin`` or a key bound to it as ``<origin> <vkey>``: a log claiming
another is not exported. Exit status: 0 on success, 2 when the log is
broken (the records before the last good checkpoint before the break have been written, none
after it), 1 on a usage error.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from kzai_guard.audit.keys import Keyring
from kzai_guard.cli.source import LOG_HELP, log_directory, subject_keys_of
from kzai_guard.cli.trust import add_origin_argument, bound_keys, expected_origin
from kzai_guard.errors import KzaiGuardError
from kzai_guard.private_files import private_file

__all__ = [
    "Trust",
    "add_encoder_options",
    "parse_time",
    "register",
    "settings_from_args",
    "trust_from_args",
]


def register(subparsers: Any) -> None:
    """Add the ``export`` verb."""
    from kzai_guard.siem.formats import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="write the verified audit log once in a SIEM format",
        description="Write the records of a verified audit log as CEF, LEEF, syslog, OCSF, "
        "ECS, Splunk HEC or JSON Lines, one message per line.",
    )
    parser.add_argument("directory", metavar="AUDIT_DIR", help=LOG_HELP)
    parser.add_argument("--format", required=True, choices=FORMATS, help="the wire format")
    parser.add_argument("--since", type=parse_time, metavar="T", help="first time (inclusive)")
    parser.add_argument("--until", type=parse_time, metavar="T", help="last time (exclusive)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="output file (default stdout)")
    add_encoder_options(parser)
    parser.set_defaults(func=run)


def add_encoder_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``export`` and ``ship``: names written into events, keys."""
    group = parser.add_argument_group("event naming")
    group.add_argument("--hostname", help="host name written into events (default: this host)")
    group.add_argument("--app-name", help="syslog APP-NAME (default kzai-guard)")
    group.add_argument(
        "--enterprise-number",
        type=int,
        help="IANA private enterprise number of the syslog SD-ID (default 32473, the "
        "documentation placeholder: set your own)",
    )
    group.add_argument("--leef-delimiter", help="LEEF attribute delimiter (default tab)")
    group.add_argument("--hec-index", help="Splunk index (default: the token's)")
    parser.add_argument(
        "--public-key",
        action="append",
        metavar="KEY",
        help="emit only records covered by a checkpoint this key signed (vkey or file); repeatable",
    )
    parser.add_argument(
        "--unverified",
        action="store_true",
        help="without --public-key: emit chain-checked records, each marked unverified",
    )
    add_origin_argument(parser)


class Trust(NamedTuple):
    """What ``--public-key`` and ``--origin`` trust: the keys (``None`` with ``--unverified``)
    and the log's expected origin (``None`` when unverified and not given)."""

    keyring: Keyring | None
    origin: str | None


def trust_from_args(args: argparse.Namespace, verb: str) -> Trust | None:
    """The keys and expected origin given; ``None``, after saying what to give, if not enough.

    With ``--public-key`` an expected origin is needed (``--origin`` or a bound key), so that
    another log signed with the same key is not taken for this one; with ``--unverified``
    alone, ``--origin`` is optional and checked when given.
    """
    if not (args.public_key or args.unverified):
        print(
            f"kzai-guard {verb}: give --public-key KEY (the log's checkpoint key) so that only "
            "records under a verified signed checkpoint leave, or --unverified to send "
            "chain-checked records marked unverified",
            file=sys.stderr,
        )
        return None
    try:
        if not args.public_key:
            return Trust(None, args.origin)
        keyring, bound = bound_keys(args.public_key)
        return Trust(keyring, expected_origin(args.origin, bound))
    except (KzaiGuardError, OSError, ValueError) as exc:
        print(f"kzai-guard {verb}: {exc}", file=sys.stderr)
        return None


def settings_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~kzai_guard.siem.EncoderSettings` the options ask for."""
    from kzai_guard.siem.settings import EncoderSettings

    given = {
        "hostname": args.hostname,
        "app_name": args.app_name,
        "enterprise_number": args.enterprise_number,
        "leef_delimiter": _delimiter(args.leef_delimiter),
        "hec_index": args.hec_index,
    }
    return EncoderSettings(**{k: v for k, v in given.items() if v is not None})


def parse_time(text: str) -> int:
    """An RFC 3339 timestamp or Unix seconds, as Unix microseconds.

    >>> parse_time("1700000000.5"), parse_time("2023-11-14T22:13:20Z")
    (1700000000500000, 1700000000000000)
    """
    try:
        micros = float(text) * 1_000_000
    except ValueError:
        pass
    else:
        if not math.isfinite(micros):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
        return round(micros)
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an RFC 3339 timestamp nor Unix seconds"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z or an offset")
    return round(moment.timestamp() * 1_000_000)


def run(args: argparse.Namespace) -> int:
    """Export; returns the exit status."""
    from pydantic import ValidationError

    from kzai_guard.audit.reader import ChainBroken, read_verified
    from kzai_guard.audit.segments import read_origin
    from kzai_guard.siem._event import SiemEvent
    from kzai_guard.siem.formats import make_encoder

    trust = trust_from_args(args, "export")
    if trust is None:
        return 1
    try:
        settings = settings_from_args(args)
        make_encoder(args.format, settings)
    except (ValidationError, KzaiGuardError) as exc:
        print(f"kzai-guard export: {exc}", file=sys.stderr)
        return 1
    since, until = args.since, args.until
    try:
        keys = subject_keys_of(args.directory)
    except KzaiGuardError as exc:
        print(f"kzai-guard export: {exc}", file=sys.stderr)
        return 1
    # an export names subjects by pseudonym: a file of it is its owner's only (0600)
    out: BinaryIO = (
        open(private_file(args.out), "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    )
    written = 0
    verified = trust.keyring is not None
    try:
        write = out.write
        with log_directory(args.directory) as directory:
            # the expected origin, else the log's own (read where the log is: a URL's is in
            # its copy); a log claiming another than the expected one breaks below
            try:
                logged = settings.for_log(trust.origin or read_origin(directory))
                encode = make_encoder(args.format, logged).encode
            except (ValidationError, KzaiGuardError) as exc:
                print(f"kzai-guard export: {exc}", file=sys.stderr)
                return 1
            entries = read_verified(
                directory,
                public_keys=trust.keyring,
                origin=trust.origin,
                subject_keys=keys,
                on_unsigned_tail=_report_unsigned,
            )
            for entry in entries:
                t = entry.record.time
                if (since is not None and t < since) or (until is not None and t >= until):
                    continue
                event = SiemEvent(entry.record, entry.seq, entry.line_hash, verified)
                write(encode(event) + b"\n")
                written += 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except ChainBroken as exc:
        print(
            f"kzai-guard export: ALARM: {exc}; {written} records before it were written",
            file=sys.stderr,
        )
        return 2
    except KzaiGuardError as exc:
        print(f"kzai-guard export: {exc}", file=sys.stderr)
        return 1
    finally:
        out.flush()
        if args.out:
            out.close()
        if keys is not None:
            keys.close()
    return 0


def _report_unsigned(first: int, last: int) -> None:
    print(
        f"kzai-guard export: records {first}..{last} are not covered by a signed checkpoint "
        "yet and were not written",
        file=sys.stderr,
    )


def _delimiter(text: str | None) -> str | None:
    if text is None:
        return None
    if text.lower() in ("tab", "x09", "0x09", "\\t"):
        return "\t"
    return text
