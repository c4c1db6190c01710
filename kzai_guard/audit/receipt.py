"""Receipts: a decision's inclusion proof as a C2SP ``tlog-proof`` (``c2sp.org/tlog-proof@v1``).

A receipt proves, offline and with public keys alone, that a record is entry ``index`` of the
log under a checkpoint signed by the log's key and cosigned by witnesses::

    c2sp.org/tlog-proof@v1
    extra <base64 of the record's log line>
    index 17
    <base64 hash>            inclusion proof, leaf's sibling first (RFC 6962 2.1.1)
    ...

    <origin>
    <size>
    <base64 root>

    — <log key> ...
    — <witness> ...

The ``extra`` line carries the log line (whose personal fields are sealed), so the verifier
computes the leaf hash itself; it is trusted only through the proof. The leaf is the line's
in the log's format (:mod:`kzai_guard.audit.leaf`): ``SHA-256(0x00 || SHA-256(line))`` in
format 2, ``SHA-256(0x00 || line)`` in format 1. A verifier that is not told the format tries
both, which admits nothing more: a line is never 32 bytes long, so no format-1 entry is a
format-2 entry, and the leaves of the two differ unless SHA-256 collides. The
checkpoint is the largest cosigned one covering the record, or the newest signed one when
no witness has cosigned one yet.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint
from kzai_guard.audit.cosignature import WitnessPolicy
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.leaf import FORMATS, check_format, line_leaf
from kzai_guard.audit.lookup import LogLookup
from kzai_guard.audit.merkle import inclusion_proof, verify_inclusion
from kzai_guard.audit.proof import ProofCheck
from kzai_guard.audit.segments import parse_line, read_format
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.audit.witnesses import cosigned_note, read_cosigned
from kzai_guard.errors import AuditLogError

__all__ = ["RECEIPT_HEADER", "Receipt", "make_receipt", "verify_receipt"]

RECEIPT_HEADER = "c2sp.org/tlog-proof@v1"
"""The first line of every receipt."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A parsed ``tlog-proof``: extra data, leaf index, inclusion proof and checkpoint."""

    extra: bytes | None
    index: int
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint

    def text(self) -> str:
        """The receipt in its text form."""
        lines = [RECEIPT_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint.note()

    @classmethod
    def parse(cls, text: str) -> Receipt:
        """Parse a receipt; ``ValueError`` if it is not a well-formed ``tlog-proof``."""
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise ValueError("a receipt needs an empty line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != RECEIPT_HEADER:
            raise ValueError(f"a receipt starts with {RECEIPT_HEADER}")
        rest = lines[1:]
        extra = None
        try:
            if rest and rest[0].startswith("extra "):
                extra = base64.b64decode(rest.pop(0)[6:], validate=True)
            if not rest or not rest[0].startswith("index "):
                raise ValueError("a receipt has an 'index N' line")
            number = rest.pop(0)[6:]
            if not number.isascii() or not number.isdigit() or number != str(int(number)):
                raise ValueError(f"index {number!r} is not a decimal without leading zeroes")
            proof = tuple(base64.b64decode(line, validate=True) for line in rest)
        except binascii.Error as exc:
            raise ValueError(f"a receipt line is not base64: {exc}") from None
        if any(len(h) != 32 for h in proof):
            raise ValueError("an inclusion proof line is one 32-byte hash")
        return cls(extra, int(number), proof, SignedCheckpoint.parse(note))


def make_receipt(
    directory: str | os.PathLike[str], *, decision_id: str | None = None, seq: int | None = None
) -> Receipt:
    """The receipt of one record, by decision id or sequence number."""
    path = Path(directory)
    lookup = LogLookup(path)
    index, line = lookup.find_record(decision_id=decision_id, seq=seq)
    kept = [n for n in read_cosigned(path) if n.checkpoint.size > index]
    if kept:
        best = max(kept, key=lambda n: n.checkpoint.size)
        note = cosigned_note(best, kept)
    else:
        newest = lookup.newest_checkpoint()
        if newest is None or newest.checkpoint.size <= index:
            raise AuditLogError(f"no signed checkpoint covers seq {index} yet; try again shortly")
        note = newest
    size = note.checkpoint.size
    tree = TreeFiles(path)
    try:
        path_hashes = inclusion_proof(index, size, tree.subtree)
    finally:
        tree.close()
    leaf = line_leaf(read_format(path), line)
    if not verify_inclusion(index, size, leaf, path_hashes, note.checkpoint.root):
        raise AuditLogError(
            f"the stored tree does not prove seq {index} against the checkpoint for size {size}; "
            "run `kzai-guard verify`"
        )
    return Receipt(line, index, tuple(path_hashes), note)


def verify_receipt(
    text: str,
    keyring: Keyring,
    origin: str,
    *,
    policy: WitnessPolicy | None = None,
    decision_id: str | None = None,
    log_format: int | None = None,
) -> ProofCheck:
    """Check a receipt offline: origin, log signature, witness policy, the record, the proof.

    ``log_format`` is the log's format (:mod:`kzai_guard.audit.leaf`), if the verifier knows
    it; otherwise the leaf of either format may prove the record (see the module docstring).
    """
    formats = FORMATS if log_format is None else (check_format(log_format),)
    try:
        receipt = Receipt.parse(text)
    except ValueError as exc:
        return ProofCheck(False, f"malformed receipt: {exc}")
    cp = receipt.checkpoint.checkpoint
    if cp.origin != origin:
        return ProofCheck(False, f"the receipt is for log {cp.origin!r}, not {origin!r}")
    status = receipt.checkpoint.status(keyring)
    if status is not CheckpointStatus.VALID:
        return ProofCheck(False, f"the checkpoint is {status.value}: not signed by a trusted key")
    cosigners: Sequence[str] = ()
    if policy is not None:
        cosigners = policy.cosigners([receipt.checkpoint])
        if len(cosigners) < policy.quorum:
            return ProofCheck(
                False,
                f"the checkpoint carries {len(cosigners)} valid cosignatures of the "
                f"{policy.quorum} required",
            )
    if receipt.extra is None:
        return ProofCheck(False, "the receipt carries no record (extra line)")
    try:
        value = parse_line(receipt.extra)
    except ValueError:
        return ProofCheck(False, "the extra line is not a log record")
    if value.get("seq") != receipt.index:
        return ProofCheck(False, f"the record is seq {value.get('seq')}, not {receipt.index}")
    record_id = value["rec"].get("id") if isinstance(value.get("rec"), dict) else None
    if decision_id is not None and record_id != decision_id:
        return ProofCheck(False, f"the record is {record_id!r}, not {decision_id!r}")
    extra = receipt.extra
    if not any(
        verify_inclusion(receipt.index, cp.size, line_leaf(f, extra), receipt.proof, cp.root)
        for f in formats
    ):
        return ProofCheck(False, "the inclusion proof does not lead to the signed root")
    witnessed = f", cosigned by {', '.join(cosigners)}" if cosigners else ""
    return ProofCheck(
        True,
        f"record {record_id!r} is entry {receipt.index} of {cp.origin} at size {cp.size}"
        f" (signed{witnessed})",
    )
