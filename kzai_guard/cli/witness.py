"""``kzai-guard witness``: run a C2SP witness for audit logs.

- ``witness keygen DIR --name NAME`` writes ``DIR/witness.key`` (0600) and ``DIR/witness.pub``
  (the vkey to give to logs and auditors).
- ``witness serve --config FILE [--host H] [--port P]`` serves ``POST /add-checkpoint`` (needs
  the ``uvicorn`` package: ``pip install 'kzai-guard[witness]'``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kzai_guard.audit.cosignature import write_cosigner_keypair
from kzai_guard.errors import ConfigurationError

__all__ = ["register", "run_keygen", "run_serve"]


def register(subparsers: Any) -> None:
    """Add the ``witness`` verb and its ``keygen`` and ``serve`` commands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "witness",
        help="run a witness that cosigns audit log checkpoints (C2SP tlog-witness)",
        description="Make a witness key, or serve a witness for the logs in a config file.",
    )
    commands = parser.add_subparsers(dest="witness_command", required=True, metavar="COMMAND")
    keygen: argparse.ArgumentParser = commands.add_parser("keygen", help="make a witness key")
    keygen.add_argument("directory", metavar="DIR")
    keygen.add_argument(
        "--name", required=True, help="the witness name, e.g. witness.example.com/w1"
    )
    keygen.set_defaults(func=run_keygen)
    serve: argparse.ArgumentParser = commands.add_parser("serve", help="serve the witness")
    serve.add_argument("--config", required=True, metavar="FILE", help="witness TOML file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8099)
    serve.set_defaults(func=run_serve)


def run_keygen(args: argparse.Namespace) -> int:
    """Write a witness key pair; print the public vkey."""
    try:
        cosigner = write_cosigner_keypair(args.directory, args.name)
    except (ConfigurationError, OSError) as exc:
        print(f"kzai-guard witness keygen: {exc}", file=sys.stderr)
        return 2
    print(cosigner.public_key.vkey())
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Load the configuration, then serve until interrupted."""
    from kzai_guard.witness.app import witness_app
    from kzai_guard.witness.config import load_witness_config
    from kzai_guard.witness.store import WitnessStore

    try:
        import uvicorn
    except ModuleNotFoundError:
        print(
            "kzai-guard witness serve: needs uvicorn: pip install 'kzai-guard[witness]'",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_witness_config(args.config)
        store = WitnessStore(config.state)
    except ConfigurationError as exc:
        print(f"kzai-guard witness serve: {exc}", file=sys.stderr)
        return 2
    print(
        f"witness {config.cosigner.public_key.vkey()} for {', '.join(sorted(config.logs))}",
        file=sys.stderr,
    )
    try:
        uvicorn.run(
            witness_app(config.cosigner, config.logs, store),
            host=args.host,
            port=args.port,
            log_level="warning",
        )
    finally:
        store.close()
    return 0
