"""What a log writer may adopt when it opens a directory: never sign what it did not write.

Whoever can write the audit directory, without the signing key, can rewrite records, recompute
the hash chain and delete the derived files. A writer that signed a checkpoint over whatever it
found would then vouch for the rewrite. So before an opening writer signs anything, the files
must be explained by what writers do, and nothing else:

- **The signed prefix.** The newest checkpoint in the directory (in the checkpoint files of
  the last two segments, where every checkpoint over the active segment's records is, in any
  checkpoint file whose segment is gone, and the anchor of a pruned log) must be signed by a
  key the writer trusts (its own, or one of ``previous_keys`` after a key change), name the
  log's origin, cover no more records than the files hold, and have the root of the tree over
  the records as they are now. A rewritten record below it, a deleted or replaced tree, or a
  forged checkpoint fails this.
- **No orphaned checkpoints.** A ``.checkpoints`` file whose segment is gone means records
  were deleted (the newest segment, say): refused.
- **The unsigned tail**, records after the newest checkpoint, is what a crash leaves: lines a
  writer appended and had not yet covered with a checkpoint. When a writer process opens the
  log, once a checkpoint covers every record, it signs a *writing mark* (:func:`mark_tail`,
  the file ``unsigned-tail``: "a writer appends after this checkpoint"), and the last process
  to close the log cleanly, with every record covered, empties it. So a mark exists only while
  writers run, or after one was killed. A tail is adopted only when all of this holds:

  1. the mark is signed by a trusted key and names a checkpoint of this log's history (origin,
     a size no larger than the newest checkpoint's, the root of the records at that size): a
     writer was writing and did not close cleanly. After a clean stop no mark is left, so
     records appended while the service was stopped are refused;
  2. the tail lies in the active segment (a segment is sealed only after a checkpoint covers
     it);
  3. it is at most ``tail_limit`` records (the writer's ``checkpoint_every``: a writer signs
     once that many records are uncovered).

  A line torn by the crash is cut off before this check, as before.

Anything else refuses the open with an :class:`~kzai_guard.errors.AuditLogError` that says
what differs; ``kzai-guard repair AUDIT_DIR --show`` shows it and ``--quarantine`` moves the
unexplained part aside (:mod:`kzai_guard.audit.quarantine`). Nothing is adopted or dropped
silently.

What this cannot see: records removed from the end *together with* their checkpoints (the
directory then looks like an older, shorter log); and, while writers run or after one was
killed (the mark is there), up to ``tail_limit`` records appended by someone else after the
newest checkpoint, or after truncating the log back to a checkpoint no older than the mark.
Only a copy of a newer checkpoint held outside the host (a witness, an auditor, the SIEM)
exposes those; ``tail_limit`` bounds them.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kzai_guard.audit.anchor_signature import anchor_problem
from kzai_guard.audit.checkpoint import Checkpoint, CheckpointStatus, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.segments import list_segments, read_anchor, read_origin
from kzai_guard.audit.verify import orphan_checkpoints
from kzai_guard.errors import AuditLogError

__all__ = [
    "TAIL_MARK_FILE",
    "Adoption",
    "adoption",
    "judge",
    "mark_tail",
    "parse_tail_mark",
    "read_tail_mark",
    "tail_mark",
]

TAIL_MARK_FILE = "unsigned-tail"
"""The signed mark "a writer appends after this checkpoint"."""

_DOMAIN = b"kzai-guard/unsigned-tail/v1\n"
_DASH = "\u2014"
_REPAIR = "run `kzai-guard repair {dir} --show` to see what differs"


@dataclass(frozen=True, slots=True)
class Adoption:
    """The state an opening writer finds: sound, or the first thing no writer explains.

    ``signed_size`` records are covered by the newest trusted checkpoint (``checkpoint``, or
    the anchor's); ``size`` records are in the files. ``problem`` is ``None`` when everything
    is explained, else what is wrong; ``orphans`` are checkpoint files whose segment is gone.
    """

    size: int
    signed_size: int
    checkpoint: SignedCheckpoint | None
    problem: str | None = None
    orphans: tuple[Path, ...] = ()

    def check(self, directory: Path) -> None:
        """Raise :class:`~kzai_guard.errors.AuditLogError` unless everything is explained."""
        if self.problem is not None:
            hint = _REPAIR.format(dir=directory)
            raise AuditLogError(
                f"audit log {directory} holds what no writer of it can vouch for: "
                f"{self.problem}. It is not opened, so that nothing is signed over it; {hint}"
            )


def adoption(
    directory: Path,
    keyring: Keyring,
    *,
    size: int,
    active_first: int,
    root_at: Callable[[int], bytes],
    tail_limit: int,
) -> Adoption:
    """Judge the files of ``directory`` (holding ``size`` records, the active segment starting
    at ``active_first``) by the rules above. ``root_at(n)`` is the root of the tree over the
    first ``n`` records as the files hold them now."""
    origin = read_origin(directory)
    anchor = read_anchor(directory)
    start = anchor.size if anchor is not None else 0
    notes: list[SignedCheckpoint] = []
    segments = [seg for seg in list_segments(directory) if seg.first >= start]
    orphans = orphan_checkpoints(directory, segments, start)
    # a checkpoint for records of the active segment is in its file or, sealing the segment
    # before it, in that one's: older files hold only older checkpoints, which the newest
    # one's root already covers (verify reads them all)
    for seg in [*segments[-2:], *orphans]:
        for note in read_notes(seg.checkpoints):
            if isinstance(note, ValueError):
                return _refused(size, f"{seg.checkpoints.name} holds a malformed note")
            notes.append(note)
    if anchor is not None:
        problem = anchor_problem(anchor, keyring, origin)
        if problem is not None:
            return _refused(size, problem)
        notes.append(SignedCheckpoint.parse(anchor.checkpoint))
    if orphans:
        names = ", ".join(o.checkpoints.name for o in orphans)
        return _refused(
            size,
            f"the segments of {names} are gone while their checkpoints remain: records were "
            "removed",
            orphans=tuple(o.checkpoints for o in orphans),
        )
    return judge(
        notes,
        read_tail_mark(directory),
        keyring,
        origin=origin,
        size=size,
        active_first=active_first,
        root_at=root_at,
        tail_limit=tail_limit,
    )


def judge(
    notes: Sequence[SignedCheckpoint],
    mark: SignedCheckpoint | None,
    keyring: Keyring,
    *,
    origin: str | None,
    size: int,
    active_first: int,
    root_at: Callable[[int], bytes],
    tail_limit: int,
) -> Adoption:
    """The rules above, over what a storage holds, wherever it keeps it: ``notes``, every
    checkpoint it keeps that may be the newest; ``mark``, its writing mark (or ``None``);
    ``size`` records, the first one not yet sealed ``active_first`` (0 where nothing is ever
    sealed); ``root_at(n)`` the root of the tree over the first ``n`` records as they are now."""
    newest = max(notes, key=lambda n: n.checkpoint.size, default=None)
    signed = 0
    if newest is not None:
        cp = newest.checkpoint
        status = newest.status(keyring)
        if status is not CheckpointStatus.VALID:
            names = ", ".join(sorted({name for name, _, _ in newest.signatures}))
            why = "a bad signature" if status is CheckpointStatus.FORGED else "no trusted key"
            return _refused(
                size,
                f"the newest checkpoint (size {cp.size}, signed by {names}) has {why}; open "
                "with the key that signed it (or name it in previous_keys)",
            )
        if origin is not None and cp.origin != origin:
            return _refused(size, f"the newest checkpoint names origin {cp.origin!r}")
        if cp.size > size:
            return _refused(
                size,
                f"a signed checkpoint covers {cp.size} records but only {size} are left: "
                "records were removed",
            )
        if root_at(cp.size) != cp.root:
            return _refused(
                size,
                f"the records up to {cp.size} do not match the signed checkpoint for that size: "
                "records were altered",
            )
        signed = cp.size
    result = Adoption(size, signed, newest)
    if size == signed:
        return result
    if signed < active_first:
        return _refused(
            size,
            f"records {signed}..{active_first - 1} lie in sealed segments and no checkpoint "
            "covers them; a writer seals a segment only after signing it",
            newest,
        )
    if size - signed > tail_limit:
        return _refused(
            size,
            f"{size - signed} records follow the newest checkpoint, more than the "
            f"{tail_limit} a writer appends before it signs (checkpoint_every)",
            newest,
        )
    if (
        mark is None
        or mark.checkpoint.origin != (origin or "")
        or mark.checkpoint.size > signed
        or mark.checkpoint.root != root_at(mark.checkpoint.size)
        or not _mark_holds(mark, keyring)
    ):
        return _refused(
            size,
            f"records {signed}..{size - 1} follow the newest checkpoint, but no writer marked "
            "that it was writing: a crash does not leave them",
            newest,
        )
    return result


def _refused(
    size: int,
    problem: str,
    checkpoint: SignedCheckpoint | None = None,
    orphans: tuple[Path, ...] = (),
) -> Adoption:
    signed = checkpoint.checkpoint.size if checkpoint is not None else 0
    return Adoption(size, signed, checkpoint, problem, orphans)


def tail_mark(checkpoint: Checkpoint, signer: Signer) -> bytes:
    """The signed mark "a writer appends after ``checkpoint``", as a storage keeps it."""
    body = _DOMAIN + checkpoint.body()
    sig = signer.sign(body)
    line = f"{_DASH} {signer.name} {base64.b64encode(signer.key_id + sig).decode()}\n"
    return body + b"\n" + line.encode()


def mark_tail(directory: Path, checkpoint: Checkpoint, signer: Signer) -> None:
    """Sign and store "a writer appends after ``checkpoint``", durably, before it does."""
    data = tail_mark(checkpoint, signer)
    path = directory / TAIL_MARK_FILE
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_tail_mark(directory: Path) -> SignedCheckpoint | None:
    """The unsigned-tail mark as the checkpoint it names with its signatures, or ``None``."""
    try:
        data = (directory / TAIL_MARK_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return parse_tail_mark(data)


def parse_tail_mark(data: bytes) -> SignedCheckpoint | None:
    """The checkpoint a mark (as :func:`tail_mark` made it) names, or ``None`` if malformed."""
    if not data.startswith(_DOMAIN):
        return None
    try:
        note = SignedCheckpoint.parse(data[len(_DOMAIN) :].decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return note


def _mark_holds(mark: SignedCheckpoint, keyring: Keyring) -> bool:
    """Whether a trusted key signed the mark (over its domain-separated body)."""
    body = _DOMAIN + mark.checkpoint.body()
    trusted = False
    for name, kid, sig in mark.signatures:
        key = keyring.get(name, kid)
        if key is not None:
            if not key.verify(sig, body):
                return False
            trusted = True
    return trusted
