"""``kzai-guard prove``, ``verify-proof`` and ``consistency``: offline proofs from the audit log.

- ``prove AUDIT_DIR DECISION_ID --origin ORIGIN [--out FILE]`` writes an inclusion-proof
  bundle for the record.
- ``prove ... --receipt`` writes the record's receipt, a C2SP ``tlog-proof`` with the
  witnesses' cosignatures; ``verify-receipt RECEIPT --public-key KEY --origin ORIGIN
  [--witness-key W --witnesses N]`` checks one offline.
- ``verify-proof BUNDLE --public-key KEY --origin ORIGIN`` checks an inclusion or consistency
  bundle.
- ``consistency AUDIT_DIR OLD_SIZE [NEW_SIZE] --origin ORIGIN [--out FILE] [--public-key KEY]``
  writes (and, given keys, checks) a proof that the log at NEW_SIZE extends the log at OLD_SIZE.

Every verb needs the origin of the log the auditor means: ``--origin``, or a ``--public-key``
bound to it as ``<origin> <vkey>``; the log directory's or the bundle's own claim is never
taken. ``prove`` given keys checks what it wrote with them.

Exit status: 0 success, 1 a proof that does not hold, 2 the command could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.lookup import newest_checkpoint
from kzai_guard.audit.proof import (
    ProofCheck,
    consistency_bundle,
    inclusion_bundle,
    verify_bundle,
)
from kzai_guard.audit.receipt import make_receipt, verify_receipt
from kzai_guard.audit.segments import read_origin
from kzai_guard.cli.source import LOG_HELP, log_directory
from kzai_guard.cli.trust import (
    add_origin_argument,
    add_witness_arguments,
    bound_keys,
    expected_origin,
    witness_policy,
)
from kzai_guard.cli.verify import add_key_arguments
from kzai_guard.errors import AuditLogError, ConfigurationError

__all__ = ["register", "run_consistency", "run_prove", "run_verify_proof", "run_verify_receipt"]


def register(subparsers: Any) -> None:
    """Add the ``prove``, ``verify-proof`` and ``consistency`` verbs."""
    prove: argparse.ArgumentParser = subparsers.add_parser(
        "prove",
        help="write an inclusion proof for one decision",
        description="Write the RFC 9162 inclusion-proof bundle of a record, by decision id.",
    )
    prove.add_argument("directory", metavar="AUDIT_DIR", help=LOG_HELP)
    prove.add_argument("decision_id", metavar="DECISION_ID", nargs="?")
    prove.add_argument("--seq", type=int, help="prove the record with this sequence number")
    prove.add_argument("--out", metavar="FILE", help="write the bundle here (default stdout)")
    prove.add_argument(
        "--receipt",
        action="store_true",
        help="write a C2SP tlog-proof receipt (with the witnesses' cosignatures) instead",
    )
    add_key_arguments(prove)
    add_origin_argument(prove)
    prove.set_defaults(func=run_prove)

    receipt: argparse.ArgumentParser = subparsers.add_parser(
        "verify-receipt",
        help="check a receipt (C2SP tlog-proof) offline with public keys",
        description=(
            "Check a receipt: the expected origin, the log's signature, the witnesses' "
            "cosignatures and the inclusion proof of the record it carries."
        ),
    )
    receipt.add_argument("receipt", metavar="RECEIPT", help="receipt file, or - for stdin")
    add_key_arguments(receipt)
    add_origin_argument(receipt)
    add_witness_arguments(receipt)
    receipt.add_argument("--decision-id", help="the decision the receipt must be for")
    receipt.set_defaults(func=run_verify_receipt)

    check: argparse.ArgumentParser = subparsers.add_parser(
        "verify-proof",
        help="check an inclusion or consistency proof bundle",
        description="Check a proof bundle and its checkpoint signature against trusted keys.",
    )
    check.add_argument("bundle", metavar="BUNDLE", help="bundle file, or - for stdin")
    add_key_arguments(check)
    add_origin_argument(check)
    check.set_defaults(func=run_verify_proof)

    grow: argparse.ArgumentParser = subparsers.add_parser(
        "consistency",
        help="prove the log at NEW_SIZE extends the log at OLD_SIZE",
        description=(
            "Write the RFC 9162 consistency-proof bundle between two tree sizes (NEW_SIZE "
            "defaults to the newest checkpoint); with --public-key, also check it."
        ),
    )
    grow.add_argument("directory", metavar="AUDIT_DIR", help=LOG_HELP)
    grow.add_argument("old_size", metavar="OLD_SIZE", type=int)
    grow.add_argument("new_size", metavar="NEW_SIZE", type=int, nargs="?")
    grow.add_argument("--out", metavar="FILE", help="write the bundle here (default stdout)")
    add_key_arguments(grow)
    add_origin_argument(grow)
    grow.set_defaults(func=run_consistency)


def _emit(bundle: dict[str, Any], out: str | None) -> None:
    text = json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def run_prove(args: argparse.Namespace) -> int:
    """Build and write an inclusion bundle (or a receipt); given keys, check it first."""
    if (args.decision_id is None) == (args.seq is None):
        print("kzai-guard prove: give a DECISION_ID or --seq", file=sys.stderr)
        return 2
    try:
        keyring, bound = bound_keys(args.public_key)
        origin = expected_origin(args.origin, bound)
        with log_directory(args.directory) as directory:
            _check_origin(directory, origin)
            if args.receipt:
                receipt = make_receipt(directory, decision_id=args.decision_id, seq=args.seq)
                _check_claim(receipt.checkpoint.checkpoint.origin, origin)
                text = receipt.text()
                if len(keyring):
                    _check_written(verify_receipt(text, keyring, origin))
                _write_text(text, args.out)
                if args.out:
                    size = receipt.checkpoint.checkpoint.size
                    print(
                        f"wrote receipt of seq {receipt.index} in tree size {size}",
                        file=sys.stderr,
                    )
                return 0
            bundle = inclusion_bundle(directory, decision_id=args.decision_id, seq=args.seq)
        _check_claim(bundle["origin"], origin)
        if len(keyring):
            _check_written(verify_bundle(bundle, keyring, origin=origin))
        _emit(bundle, args.out)
    except (AuditLogError, ConfigurationError, OSError, ValueError) as exc:
        print(f"kzai-guard prove: {exc}", file=sys.stderr)
        return 2
    if args.out:
        print(
            f"wrote proof of seq {bundle['leaf_index']} in tree size {bundle['tree_size']} "
            f"to {args.out}",
            file=sys.stderr,
        )
    return 0


def _write_text(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _check_origin(directory: Path, origin: str) -> None:
    """Refuse to prove from a log that is not the one the auditor names."""
    newest: SignedCheckpoint | None = newest_checkpoint(directory)
    for claimed in (read_origin(directory), newest and newest.checkpoint.origin):
        if claimed is not None:
            _check_claim(claimed, origin)


def _check_claim(claimed: object, origin: str) -> None:
    if claimed != origin:
        raise ConfigurationError(f"the log is {claimed!r}, not {origin!r}")


def _check_written(check: ProofCheck) -> None:
    """A proof that does not hold under the keys given is not written."""
    if not check.ok:
        raise AuditLogError(f"the proof does not hold: {check.message}")


def run_verify_receipt(args: argparse.Namespace) -> int:
    """Check a receipt offline; 0 if it holds, 1 if not."""
    try:
        keyring, bound = bound_keys(args.public_key)
        if not len(keyring):
            raise ConfigurationError("give at least one --public-key")
        origin = expected_origin(args.origin, bound)
        text = sys.stdin.read() if args.receipt == "-" else Path(args.receipt).read_text("utf-8")
        policy = witness_policy(args.witness_key, args.witnesses)
    except (ConfigurationError, OSError, ValueError) as exc:
        print(f"kzai-guard verify-receipt: {exc}", file=sys.stderr)
        return 2
    result = verify_receipt(text, keyring, origin, policy=policy, decision_id=args.decision_id)
    print(("OK: " if result.ok else "FAILED: ") + result.message)
    return 0 if result.ok else 1


def run_verify_proof(args: argparse.Namespace) -> int:
    """Check a bundle; 0 if it holds, 1 if not."""
    try:
        keyring, bound = bound_keys(args.public_key)
        if not len(keyring):
            raise ConfigurationError("give at least one --public-key")
        origin = expected_origin(args.origin, bound)
        text = sys.stdin.read() if args.bundle == "-" else Path(args.bundle).read_text("utf-8")
        bundle = json.loads(text)
        if not isinstance(bundle, dict):
            raise ValueError("a bundle is a JSON object")
    except (ConfigurationError, OSError, ValueError) as exc:
        print(f"kzai-guard verify-proof: {exc}", file=sys.stderr)
        return 2
    result = verify_bundle(bundle, keyring, origin=origin)
    print(("OK: " if result.ok else "FAILED: ") + result.message)
    return 0 if result.ok else 1


def run_consistency(args: argparse.Namespace) -> int:
    """Build (and with keys, check) a consistency bundle."""
    try:
        keys, bound = bound_keys(args.public_key)
        origin = expected_origin(args.origin, bound)
        with log_directory(args.directory) as directory:
            _check_origin(directory, origin)
            bundle = consistency_bundle(directory, args.old_size, args.new_size)
        _check_claim(bundle["origin"], origin)
        keyring = keys if args.public_key else None
        _emit(bundle, args.out)
    except (AuditLogError, ConfigurationError, OSError, ValueError) as exc:
        print(f"kzai-guard consistency: {exc}", file=sys.stderr)
        return 2
    if keyring is None:
        return 0
    result = verify_bundle(bundle, keyring, origin=origin)
    print(("OK: " if result.ok else "FAILED: ") + result.message, file=sys.stderr)
    return 0 if result.ok else 1
