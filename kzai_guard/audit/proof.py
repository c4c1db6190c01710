"""Inclusion and consistency proof bundles: one record, or the log's growth, checked offline.

An inclusion bundle proves that one line is entry ``leaf_index`` of the tree a signed checkpoint
commits to; a consistency bundle proves that the tree at ``new_size`` extends the tree at
``old_size`` (the log only grew). Both are JSON objects that any RFC 9162 implementation can
check: hashes are base64 (as in the checkpoint), ``audit_path`` / ``proof`` are in RFC 9162
order, ``entry`` is the log line (UTF-8, without newline) and ``log_format`` the log's format
(:mod:`kzai_guard.audit.leaf`; absent in bundles of format-1 logs): in format 1 the line is the
RFC 9162 entry, in format 2 the entry is its commitment ``SHA-256(line)``::

    {"format": "kzai-guard/inclusion-proof/v1", "origin": ..., "leaf_index": 17,
     "tree_size": 20000, "entry": "{\\"prev\\":...}", "log_format": 2, "leaf_hash": "<b64>",
     "audit_path": ["<b64>", ...], "root_hash": "<b64>", "checkpoint": "<signed note>"}

    {"format": "kzai-guard/consistency-proof/v1", "origin": ..., "old_size": 10000,
     "new_size": 20000, "old_root": "<b64>", "new_root": "<b64>", "proof": ["<b64>", ...],
     "old_checkpoint": "<signed note>" | null, "checkpoint": "<signed note>"}
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.leaf import LINES, check_format, line_leaf
from kzai_guard.audit.lookup import LogLookup, checkpoint_at, find_record, newest_checkpoint
from kzai_guard.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from kzai_guard.audit.segments import list_segments, parse_line, read_anchor, read_format
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError

__all__ = [
    "CONSISTENCY_FORMAT",
    "INCLUSION_FORMAT",
    "ProofCheck",
    "checkpoint_at",
    "checkpoints",
    "consistency_bundle",
    "find_record",
    "inclusion_bundle",
    "newest_checkpoint",
    "verify_bundle",
]

INCLUSION_FORMAT = "kzai-guard/inclusion-proof/v1"
CONSISTENCY_FORMAT = "kzai-guard/consistency-proof/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(text, validate=True)


@dataclass(frozen=True, slots=True)
class ProofCheck:
    """The outcome of :func:`verify_bundle`: ``ok`` and a sentence saying why."""

    ok: bool
    message: str


def checkpoints(directory: str | os.PathLike[str]) -> list[SignedCheckpoint]:
    """Every well-formed checkpoint of the log (the anchor's included), by size.

    This reads every checkpoint file; the proofs use :func:`newest_checkpoint` and
    :func:`checkpoint_at`, which read one.
    """
    path = Path(directory)
    found: list[SignedCheckpoint] = []
    anchor = read_anchor(path)
    if anchor is not None:
        found.append(SignedCheckpoint.parse(anchor.checkpoint))
    for seg in list_segments(path):
        found.extend(n for n in read_notes(seg.checkpoints) if isinstance(n, SignedCheckpoint))
    found.sort(key=lambda n: n.checkpoint.size)
    return found


def inclusion_bundle(
    directory: str | os.PathLike[str], *, decision_id: str | None = None, seq: int | None = None
) -> dict[str, Any]:
    """The inclusion-proof bundle of one record against the newest checkpoint covering it."""
    path = Path(directory)
    lookup = LogLookup(path)
    index, line = lookup.find_record(decision_id=decision_id, seq=seq)
    note = lookup.newest_checkpoint()
    if note is None or note.checkpoint.size <= index:
        raise AuditLogError(f"no signed checkpoint covers seq {index} yet; try again shortly")
    size = note.checkpoint.size
    tree = TreeFiles(path)
    try:
        audit_path = inclusion_proof(index, size, tree.subtree)
    finally:
        tree.close()
    log_format = read_format(path)
    leaf = line_leaf(log_format, line)
    if not verify_inclusion(index, size, leaf, audit_path, note.checkpoint.root):
        raise AuditLogError(
            f"the stored tree does not prove seq {index} against the checkpoint for size {size}; "
            "run `kzai-guard verify`"
        )
    bundle: dict[str, Any] = {
        "format": INCLUSION_FORMAT,
        "origin": note.checkpoint.origin,
        "leaf_index": index,
        "tree_size": size,
        "entry": line.decode(),
        "leaf_hash": _b64(leaf),
        "audit_path": [_b64(h) for h in audit_path],
        "root_hash": _b64(note.checkpoint.root),
        "checkpoint": note.note(),
    }
    if log_format != LINES:
        bundle["log_format"] = log_format
    return bundle


def consistency_bundle(
    directory: str | os.PathLike[str], old_size: int, new_size: int | None = None
) -> dict[str, Any]:
    """The consistency-proof bundle from ``old_size`` to ``new_size`` (default: newest)."""
    path = Path(directory)
    lookup = LogLookup(path)
    newest = lookup.newest_checkpoint()
    if newest is None:
        raise AuditLogError(f"{path} has no signed checkpoint")
    new_note = newest if new_size is None else lookup.checkpoint_at(new_size)
    if new_note is None:
        sizes = ", ".join(str(n.checkpoint.size) for n in lookup.recent_checkpoints(5))
        raise AuditLogError(f"no checkpoint has size {new_size}; recent sizes: {sizes}")
    new_size = new_note.checkpoint.size
    if not 0 <= old_size <= new_size:
        raise AuditLogError(f"old size {old_size} must be between 0 and {new_size}")
    anchor = lookup.anchor
    if anchor is not None and old_size < anchor.size:
        raise AuditLogError(
            f"the records before {anchor.size} were pruned with the tree over them; a "
            f"consistency proof can start at size {anchor.size} or later"
        )
    old_note = lookup.checkpoint_at(old_size)
    tree = TreeFiles(path)
    try:
        proof = consistency_proof(old_size, new_size, tree.subtree)
        old_root = tree.subtree(0, old_size)
    finally:
        tree.close()
    return {
        "format": CONSISTENCY_FORMAT,
        "origin": new_note.checkpoint.origin,
        "old_size": old_size,
        "new_size": new_size,
        "old_root": _b64(old_root),
        "new_root": _b64(new_note.checkpoint.root),
        "proof": [_b64(h) for h in proof],
        "old_checkpoint": old_note.note() if old_note is not None else None,
        "checkpoint": new_note.note(),
    }


def verify_bundle(
    bundle: dict[str, Any], keyring: Keyring, *, origin: str | None = None
) -> ProofCheck:
    """Check an inclusion or consistency bundle: its proof and its checkpoint signature(s).

    ``origin`` is the log the auditor expects (``kzai-guard verify-proof --origin``): the
    bundle and its checkpoints must name it. Without it, a bundle for another log signed with
    the same key holds.
    """
    if not isinstance(bundle, dict):
        return ProofCheck(False, f"malformed bundle: a JSON object is needed, not {bundle!r:.40}")
    if origin is not None and bundle.get("origin") != origin:
        return ProofCheck(False, f"the bundle is for log {bundle.get('origin')!r}, not {origin!r}")
    try:
        kind = bundle.get("format")
        if kind == INCLUSION_FORMAT:
            return _verify_inclusion(bundle, keyring)
        if kind == CONSISTENCY_FORMAT:
            return _verify_consistency(bundle, keyring)
        return ProofCheck(False, f"unknown bundle format {kind!r}")
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        return ProofCheck(False, f"malformed bundle: {exc}")


def _signed(text: Any, keyring: Keyring, what: str) -> SignedCheckpoint:
    note = SignedCheckpoint.parse(str(text))
    status = note.status(keyring)
    if status is not CheckpointStatus.VALID:
        raise _Fail(f"the {what} is {status.value}: not signed by a trusted key")
    return note


class _Fail(Exception):
    pass


def _verify_inclusion(bundle: dict[str, Any], keyring: Keyring) -> ProofCheck:
    try:
        note = _signed(bundle["checkpoint"], keyring, "checkpoint")
    except _Fail as exc:
        return ProofCheck(False, str(exc))
    cp = note.checkpoint
    index, size = int(bundle["leaf_index"]), int(bundle["tree_size"])
    if size != cp.size or cp.origin != bundle["origin"] or _unb64(bundle["root_hash"]) != cp.root:
        return ProofCheck(
            False, "the bundle's tree size, origin or root differs from its checkpoint"
        )
    entry = str(bundle["entry"]).encode()
    try:
        leaf = line_leaf(check_format(bundle.get("log_format", LINES)), entry)
    except ValueError as exc:
        return ProofCheck(False, str(exc))
    if _unb64(bundle["leaf_hash"]) != leaf:
        return ProofCheck(False, "leaf_hash is not the hash of entry")
    value = parse_line(entry)
    if value["seq"] != index:
        return ProofCheck(False, f"the entry is seq {value['seq']}, not leaf {index}")
    path = [_unb64(h) for h in bundle["audit_path"]]
    if not verify_inclusion(index, size, leaf, path, cp.root):
        return ProofCheck(False, "the audit path does not lead to the signed root")
    record_id = value["rec"].get("id")
    return ProofCheck(
        True, f"record {record_id!r} is entry {index} of {cp.origin} at size {size} (signed)"
    )


def _verify_consistency(bundle: dict[str, Any], keyring: Keyring) -> ProofCheck:
    try:
        note = _signed(bundle["checkpoint"], keyring, "new checkpoint")
        old_note = None
        if bundle.get("old_checkpoint"):
            old_note = _signed(bundle["old_checkpoint"], keyring, "old checkpoint")
    except _Fail as exc:
        return ProofCheck(False, str(exc))
    old, new = int(bundle["old_size"]), int(bundle["new_size"])
    old_root, new_root = _unb64(bundle["old_root"]), _unb64(bundle["new_root"])
    cp = note.checkpoint
    if cp.size != new or cp.root != new_root or cp.origin != bundle["origin"]:
        return ProofCheck(False, "new_size/new_root/origin differ from the signed checkpoint")
    if old_note is not None and (
        old_note.checkpoint.size != old
        or old_note.checkpoint.root != old_root
        or old_note.checkpoint.origin != cp.origin
    ):
        return ProofCheck(False, "old_size/old_root differ from the old signed checkpoint")
    proof = [_unb64(h) for h in bundle["proof"]]
    if not verify_consistency(old, new, old_root, new_root, proof):
        return ProofCheck(False, f"the proof does not show size {new} extends size {old}")
    signed = "signed" if old_note is not None else "unsigned: compare old_root with your copy"
    return ProofCheck(True, f"{cp.origin} at size {new} extends size {old} (old root {signed})")
