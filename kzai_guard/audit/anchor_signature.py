"""The signed anchor of a pruned log: who pruned, under which rule, and when.

Pruning deletes the oldest records, and a deletion cannot be seen in what is left. So the
anchor that lets the rest verify (:class:`~kzai_guard.audit.segments.Anchor`) is a statement of
the key holder: "the first ``size`` records were pruned at ``pruned_at`` under a retention of
``retention_seconds``; the newest of them was written at ``newest_pruned``", signed with the
log key over the domain-separated canonical JSON of every anchor member. A verifier accepts an
anchor only if that signature holds under a trusted key, the retention is at least the legal
minimum, the newest pruned record was past retention at the time of pruning, and the anchored
checkpoint is signed and matches the anchor's tree edge. Everything else in ``anchor.json``
(the tree edge, the leaf hash, a genuine checkpoint) is public, so without the signature
anyone could write an anchor that hides the deletion of records still under retention.

The signature is one C2SP signed-note signature line (``— <name> <base64(key id || sig)>``)
over ``kzai-guard/anchor/v1\\n`` followed by the canonical JSON; that body can never be read as
a checkpoint body, whose second line is a decimal size.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses

from kzai_guard.audit.canonical import canonical_json
from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.segments import Anchor

__all__ = ["MINIMUM_RETENTION_DAYS", "anchor_body", "anchor_problem", "sign_anchor"]

MINIMUM_RETENTION_DAYS = 183
"""Six months: the law's minimum retention of the audit trail."""

_DOMAIN = b"kzai-guard/anchor/v1\n"
_DASH = "\u2014"
_MICROS_PER_SECOND = 1_000_000


def anchor_body(anchor: Anchor) -> bytes:
    """The bytes the anchor's signature covers."""
    return _DOMAIN + canonical_json(anchor.fields())


def sign_anchor(anchor: Anchor, signer: Signer) -> Anchor:
    """``anchor`` with ``signer``'s signature line."""
    sig = signer.sign(anchor_body(anchor))
    line = f"{_DASH} {signer.name} {base64.b64encode(signer.key_id + sig).decode()}"
    return dataclasses.replace(anchor, signature=line)


def anchor_problem(anchor: Anchor, keyring: Keyring, origin: str | None = None) -> str | None:
    """What is wrong with ``anchor`` under ``keyring`` (and the log's ``origin``), or ``None``.

    Checks the signature, the stated rule and times, and the anchored checkpoint.
    """
    if anchor.signature is None:
        return "anchor.json is not signed: a pruning must be signed with the log key"
    name, kid, sig = _parse_signature(anchor.signature)
    if not name:
        return "anchor.json has a malformed signature line"
    key = keyring.get(name, kid)
    if key is None:
        return f"anchor.json is signed by {name!r}, not a trusted key"
    if not key.verify(sig, anchor_body(anchor)):
        return "anchor.json has a bad signature"
    if anchor.retention_seconds is None or anchor.pruned_at is None or anchor.newest_pruned is None:
        return "anchor.json does not state the retention, the pruning time and the newest record"
    minimum = MINIMUM_RETENTION_DAYS * 86_400
    if anchor.retention_seconds < minimum:
        return (
            f"anchor.json states a retention of {anchor.retention_seconds} s, below the legal "
            f"minimum of {MINIMUM_RETENTION_DAYS} days"
        )
    limit = anchor.pruned_at - anchor.retention_seconds * _MICROS_PER_SECOND
    if anchor.newest_pruned > limit:
        return (
            "anchor.json prunes records that were still under retention: the newest was written "
            f"at {anchor.newest_pruned} µs, less than the retention before the pruning at "
            f"{anchor.pruned_at} µs"
        )
    try:
        note = SignedCheckpoint.parse(anchor.checkpoint)
    except ValueError as exc:
        return f"anchor checkpoint: {exc}"
    if note.status(keyring) is not CheckpointStatus.VALID:
        return "the anchor's checkpoint is not validly signed by a trusted key"
    cp = note.checkpoint
    if origin is not None and cp.origin != origin:
        return f"the anchor's checkpoint names origin {cp.origin!r}, the log is {origin!r}"
    try:
        root = CompactRange(anchor.size, anchor.range).root()
    except ValueError:
        root = b""
    if cp.size != anchor.size or cp.root != root:
        return "anchor.json disagrees with its checkpoint"
    return None


def _parse_signature(line: str) -> tuple[str, bytes, bytes]:
    prefix, _, rest = line.partition(" ")
    name, _, b64 = rest.partition(" ")
    if prefix != _DASH or not name or not b64:
        return "", b"", b""
    try:
        raw = base64.b64decode(b64, validate=True)
    except binascii.Error:
        return "", b"", b""
    if len(raw) != 68:
        return "", b"", b""
    return name, raw[:4], raw[4:]
