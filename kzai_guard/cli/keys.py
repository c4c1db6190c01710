"""``kzai-guard keygen``: make an Ed25519 key pair for signing audit checkpoints."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kzai_guard.audit.keys import write_keypair
from kzai_guard.errors import ConfigurationError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``keygen`` verb."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keygen",
        help="make an Ed25519 key pair for signing audit checkpoints",
        description=(
            "Write NAME.key (PEM PKCS#8 private key, mode 0600) and NAME.pub (the C2SP vkey "
            "'name+keyid+base64key') into DIR. Give NAME.pub to verifiers; keep NAME.key secret."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the key files")
    parser.add_argument("--name", help="key name (default kzai-guard-audit-<UTC time>)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the key pair; exit 0, or 2 if the files exist or the name is invalid."""
    try:
        private, public, signer = write_keypair(args.out, args.name)
    except FileExistsError as exc:
        print(f"kzai-guard keygen: {exc.filename} exists; choose another --name", file=sys.stderr)
        return 2
    except (ConfigurationError, OSError) as exc:
        print(f"kzai-guard keygen: {exc}", file=sys.stderr)
        return 2
    print(f"private key: {private}")
    print(f"public key:  {public}")
    print(f"vkey:        {signer.public_key.vkey()}")
    return 0
