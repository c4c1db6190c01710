"""The witness status the report shows: who cosigned the log's checkpoints, up to what size and
when, and how far the log has grown since.

:func:`read_cosignatures` is the one place the report reads cosignatures from; a log kept
elsewhere than in a directory's ``cosigned.checkpoints`` only needs that function to change.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.cosignature import WitnessPolicy
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.witnesses import read_cosigned

__all__ = ["WitnessRow", "WitnessStatus", "read_cosignatures", "witness_status"]

_COSIGNATURE_LENGTH = 72
"""A cosignature/v1 line's signature: an 8-byte timestamp and a 64-byte Ed25519 signature."""


@dataclass(frozen=True, slots=True)
class WitnessRow:
    """One witness: the newest checkpoint size it cosigned, when, and whether that was checked.

    ``checked`` is true when the cosignature verified against a trusted witness key given to the
    report; false when no key for the witness was given (then ``cosigned_at`` is what the line
    claims). A line that fails against a given key is not counted at all.
    """

    name: str
    size: int
    cosigned_at: datetime
    checked: bool
    behind: int
    """Records the log holds beyond ``size``."""


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """The witnesses of one log, as the report shows them."""

    log_size: int
    witnesses: tuple[WitnessRow, ...]
    quorum: int | None
    """How many trusted witnesses must cosign (``None``: no witness keys were given)."""
    quorum_size: int | None
    """The newest size cosigned by at least :attr:`quorum` trusted witnesses, if any."""


def read_cosignatures(directory: Path) -> list[SignedCheckpoint]:
    """Every cosigned checkpoint note kept for the log in ``directory``."""
    return read_cosigned(directory)


def witness_status(
    notes: list[SignedCheckpoint],
    log_keys: Keyring,
    log_size: int,
    policy: WitnessPolicy | None = None,
) -> WitnessStatus | None:
    """The status of the witnesses that cosigned ``notes``; ``None`` when none did.

    Signature lines by the log's own keys (``log_keys``) are not witnesses'. With ``policy``,
    each witness it names is checked against its key.
    """
    trusted = {key.name: key for key in policy.keys} if policy is not None else {}
    newest: dict[str, tuple[int, int, bool]] = {}
    for note in notes:
        checkpoint = note.checkpoint
        for name, kid, signature in note.signatures:
            if log_keys.get(name, kid) is not None or len(signature) != _COSIGNATURE_LENGTH:
                continue
            key = trusted.get(name)
            if key is None:
                (stamp,) = struct.unpack(">Q", signature[:8])
                checked = False
            else:
                verified = key.cosigned(SignedCheckpoint(checkpoint, ((name, kid, signature),)))
                if verified is None:
                    continue
                stamp, checked = verified, True
            seen = newest.get(name)
            if seen is None or (checkpoint.size, stamp) > seen[:2]:
                newest[name] = (checkpoint.size, stamp, checked)
    if not newest:
        return None
    rows = tuple(
        WitnessRow(
            name,
            size,
            datetime.fromtimestamp(stamp, UTC),
            checked,
            max(0, log_size - size),
        )
        for name, (size, stamp, checked) in sorted(newest.items())
    )
    quorum_size = None
    if policy is not None:
        sizes = sorted((r.size for r in rows if r.checked), reverse=True)
        if len(sizes) >= policy.quorum > 0:
            quorum_size = sizes[policy.quorum - 1]
    return WitnessStatus(log_size, rows, policy.quorum if policy else None, quorum_size)
