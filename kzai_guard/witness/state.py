"""The witness's decision on one ``add-checkpoint`` request: pure, no I/O, no clock.

:func:`judge` takes the parsed request, the keys the witness trusts for each origin, what it
last cosigned for the origin (``None`` if nothing) and the time, and returns an
:class:`Answer`: the HTTP status, the body, and the new :class:`LogState` to store when it
cosigned. The checks and their statuses are those of C2SP ``tlog-witness``:

====  ============================================================================
404   the origin is not one of the witness's logs
403   no signature by a trusted key of that log, or one that names it but fails
400   the old size is larger than the checkpoint's size (or the request is malformed)
409   the old size is not the size the witness last cosigned; the body is that size
422   a size-0 checkpoint with another root; a proof from size 0; a proof that does
      not verify; the same size with another root (a split view)
200   cosigned: the body is the witness's signature line
====  ============================================================================

Because a checkpoint is only cosigned when it is proved consistent with the last one cosigned
(or is the same), the witness never cosigns two inconsistent checkpoints of one origin, and
the size it holds never goes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint
from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.merkle import EMPTY_ROOT, verify_consistency
from kzai_guard.witness.protocol import SIZE_CONTENT_TYPE, AddCheckpoint

__all__ = ["Answer", "LogState", "judge"]

_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class LogState:
    """What the witness last cosigned for one origin: its size, root and the cosigned note."""

    size: int
    root: bytes
    note: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP answer to a request, and the state to store if the witness cosigned."""

    status: int
    body: str
    content_type: str = _TEXT
    cosigned: LogState | None = None


def judge(
    request: AddCheckpoint,
    logs: Mapping[str, Keyring],
    current: LogState | None,
    cosigner: Cosigner,
    now: int,
) -> Answer:
    """Decide on ``request`` given the state ``current`` of its origin; see the module table."""
    try:
        note = SignedCheckpoint.parse(request.note)
    except ValueError as exc:
        return Answer(400, f"malformed checkpoint: {exc}\n")
    cp = note.checkpoint
    keyring = logs.get(cp.origin)
    if keyring is None:
        return Answer(404, f"unknown log origin {cp.origin!r}\n")
    if note.status(keyring) is not CheckpointStatus.VALID:
        return Answer(403, "the checkpoint carries no valid signature by the log's key\n")
    if request.old_size > cp.size:
        return Answer(400, f"old size {request.old_size} is larger than {cp.size}\n")
    held = 0 if current is None else current.size
    if request.old_size != held:
        return Answer(409, f"{held}\n", SIZE_CONTENT_TYPE)
    if cp.size == 0 and cp.root != EMPTY_ROOT:
        return Answer(422, "a checkpoint of size 0 must have the empty tree's root\n")
    if current is None or request.old_size == 0:
        if request.proof:
            return Answer(422, "no consistency proof is needed from size 0\n")
    elif current.size == cp.size:
        if cp.root != current.root or request.proof:
            return Answer(422, f"another root for size {cp.size}: a split view\n")
    elif not verify_consistency(current.size, cp.size, current.root, cp.root, request.proof):
        return Answer(422, f"the proof does not show size {cp.size} extends size {current.size}\n")
    line = cosigner.cosign(cp, now)
    trusted = tuple(s for s in note.signatures if keyring.get(s[0], s[1]) is not None)
    cosigned = SignedCheckpoint(cp, (*trusted, line))
    body = SignedCheckpoint(cp, (line,)).signature_lines()
    return Answer(200, body, cosigned=LogState(cp.size, cp.root, cosigned.note()))
