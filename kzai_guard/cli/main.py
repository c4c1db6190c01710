"""``kzai-guard``: the command line entry point.

Each verb lives in its own module with a ``register(subparsers)`` function that adds its parser
and sets ``func`` (taking the parsed arguments, returning the exit code). Verbs are imported
lazily so that ``kzai-guard --help`` stays fast and an optional dependency is only needed by the
verb that uses it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# verb -> module under kzai_guard.cli; the order is the order of --help.
VERBS: dict[str, str] = {
    "keygen": "keys",
    "verify": "verify",
    "prove": "prove",
    "verify-proof": "prove",
    "verify-receipt": "prove",
    "consistency": "prove",
    "export": "export",
    "ship": "ship",
    "copy": "copy",
    "check": "check",
    "repair": "repair",
    "report": "report",
    "tiles": "tiles",
    "witness": "witness",
    "reviews": "reviews",
}


def build_parser() -> argparse.ArgumentParser:
    """The full parser, every verb registered."""
    parser = argparse.ArgumentParser(
        prog="kzai-guard",
        description="Keys, verification, proofs and SIEM export for kzai_guard audit logs.",
    )
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in dict.fromkeys(VERBS.values()):
        try:
            importlib.import_module(f"kzai_guard.cli.{module}").register(subparsers)
        except ModuleNotFoundError as exc:
            if exc.name != f"kzai_guard.cli.{module}":
                raise
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
