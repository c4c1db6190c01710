"""Verifying a log against what others saw of it: witness cosignatures and held checkpoints.

:func:`verify_witnessed` runs :func:`~kzai_guard.audit.verify.verify_log` and then checks:

- every checkpoint the auditor holds (signed by the log's key, typically cosigned, kept from
  an earlier visit or a receipt) against the verified lines: a log that now ends before it
  was **rolled back** (its newest records removed together with their checkpoints); one whose
  root at that size differs was **forked** (rewritten and re-signed by the key holder);
- with a :class:`~kzai_guard.audit.cosignature.WitnessPolicy`, that the newest checkpoint (or
  the one of ``witnessed_size``) carries cosignatures from the policy's quorum, gathered from
  the log's ``cosigned.checkpoints`` and the held notes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint
from kzai_guard.audit.cosignature import WitnessPolicy
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.proof import checkpoints
from kzai_guard.audit.verify import Problem, VerifyReport, verify_log
from kzai_guard.audit.witnesses import read_cosigned
from kzai_guard.errors import AuditLogError

__all__ = ["verify_witnessed"]


def verify_witnessed(
    directory: str | os.PathLike[str],
    keyring: Keyring,
    *,
    origin: str | None = None,
    policy: WitnessPolicy | None = None,
    held: Sequence[SignedCheckpoint] = (),
    witnessed_size: int | None = None,
    allow_unsigned_tail: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify the log, the held checkpoints ``held`` against it, and the witness ``policy``.

    Raises :class:`~kzai_guard.errors.AuditLogError` if a held checkpoint is not signed by a
    key of ``keyring`` for the expected origin (a mistake of the auditor, not of the log).
    """
    path = Path(directory)
    for note in held:
        if note.status(keyring) is not CheckpointStatus.VALID:
            raise AuditLogError(
                f"the held checkpoint for size {note.checkpoint.size} is not signed by a "
                "trusted --public-key"
            )
        if origin is not None and note.checkpoint.origin != origin:
            raise AuditLogError(
                f"the held checkpoint is for {note.checkpoint.origin!r}, not {origin!r}"
            )
    report = verify_log(
        path,
        keyring,
        allow_unsigned_tail=allow_unsigned_tail,
        progress=progress,
        origin=origin,
        roots_at=[n.checkpoint.size for n in held],
    )
    if report.problem is not None:
        return report
    end = report.first_seq + report.records
    for note in sorted(held, key=lambda n: n.checkpoint.size):
        size = note.checkpoint.size
        if size > end:
            report.problem = Problem(
                end,
                "rolled-back",
                f"the log ends at size {end}, but a checkpoint you hold commits to {size} "
                "records: records and checkpoints were removed",
            )
            return report
        root = report.roots.get(size)
        if root is None:
            raise AuditLogError(
                f"the held checkpoint for size {size} is before the pruned log's start "
                f"({report.first_seq}); it cannot be compared"
            )
        if root != note.checkpoint.root.hex():
            report.problem = Problem(
                size - 1,
                "forked",
                f"the log's first {size} records are not those of the checkpoint you hold: "
                "the log was rewritten and re-signed",
            )
            return report
    if policy is not None:
        _check_policy(path, report, policy, held, witnessed_size)
    return report


def _check_policy(
    path: Path,
    report: VerifyReport,
    policy: WitnessPolicy,
    held: Sequence[SignedCheckpoint],
    witnessed_size: int | None,
) -> None:
    size = report.signed_size if witnessed_size is None else witnessed_size
    notes = [n for n in checkpoints(path) if n.checkpoint.size == size]
    if not notes:
        raise AuditLogError(f"the log has no checkpoint of size {size} to count cosignatures on")
    target = notes[-1].checkpoint
    kept = [n for n in (*read_cosigned(path), *held, *notes) if n.checkpoint == target]
    report.witnessed_size = size
    report.cosigners = policy.cosigners(kept)
    if len(report.cosigners) < policy.quorum:
        report.problem = Problem(
            size - 1,
            "unwitnessed",
            f"the checkpoint for size {size} carries {len(report.cosigners)} valid cosignatures "
            f"of the {policy.quorum} required"
            + (f" (from {', '.join(report.cosigners)})" if report.cosigners else ""),
        )
