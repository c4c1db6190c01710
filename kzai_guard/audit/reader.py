"""Reading the audit log back, with the chain checked as it is read.

:func:`read_verified` is the API for consumers such as the SIEM exporter; :func:`follow`
tails a live log. Both check every line's hash chain and raise :class:`ChainBroken` at the
first break instead of yielding anything after it. Given public keys they also check every
signed checkpoint they pass and yield an entry only once a verified checkpoint covers it, so
a record altered anywhere after the last good checkpoint is never handed on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kzai_guard.audit.anchor_signature import anchor_problem
from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring, PublicKey
from kzai_guard.audit.leaf import line_leaf
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.segments import (
    GENESIS,
    Segment,
    list_segments,
    parse_line,
    read_anchor,
    read_format,
    read_origin,
)
from kzai_guard.audit.shredding import (
    ERASED,
    RECORD_REF_PREFIX,
    SEALED,
    SEALED_FIELDS,
    RecordRefs,
    ReservedSubjectKeys,
    SqliteSubjectKeys,
    SubjectKeys,
    unseal,
)
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError

__all__ = ["ChainBroken", "LogEntry", "follow", "read_verified"]

DEFAULT_SUBJECT_KEYS = "subject-keys.sqlite3"


class ChainBroken(AuditLogError):
    """Raised when a line does not continue the log: ``seq`` is where the break was found.

    ``reason`` says what is wrong (a hash link, a sequence number, a checkpoint).
    ``unconfirmed_from`` is the first record not covered by a verified checkpoint when the
    log is read with public keys (nothing from it on was yielded; the damage may lie anywhere
    from there to ``seq``), else ``seq``.
    """

    def __init__(self, seq: int, reason: str, unconfirmed_from: int | None = None) -> None:
        first = seq if unconfirmed_from is None else min(seq, unconfirmed_from)
        where = f"seq {seq}" if first == seq else f"seq {seq}, unconfirmed from seq {first}"
        super().__init__(f"audit log broken at {where}: {reason}")
        self.seq = seq
        self.reason = reason
        self.unconfirmed_from = first


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One record of the log as read back.

    ``record`` carries the decrypted personal fields, or :data:`~kzai_guard.audit.shredding.ERASED`
    (key erased) / :data:`~kzai_guard.audit.shredding.SEALED` (no key store) in their place;
    ``line_hash`` is the hex RFC 9162 leaf hash of ``line``, the raw line without newline, in
    the log's format (:mod:`kzai_guard.audit.leaf`).
    """

    seq: int
    record: AuditRecord
    line_hash: str
    line: bytes
    erased: bool = False


def read_verified(
    directory: str | Path,
    *,
    after_seq: int | None = None,
    public_keys: Iterable[str | Path | PublicKey] | Keyring | None = None,
    subject_keys: SubjectKeys | None = None,
    on_unsigned_tail: Callable[[int, int], None] | None = None,
    origin: str | None = None,
) -> Iterator[LogEntry]:
    """Yield the log's entries in order, after ``after_seq``, checking the chain as it goes.

    Every line's ``prev`` must equal the hash of the line before it (reading starts at the
    beginning of the segment holding ``after_seq + 1`` so that the first entry yielded is
    checked too) and its ``seq`` must be the next number. With ``public_keys`` (vkey strings,
    key files, :class:`PublicKey` objects or a :class:`Keyring`) every signed checkpoint passed
    must carry a valid signature of a listed key and match the Merkle root of the lines read,
    the anchor of a pruned log must carry a valid signature, and an entry is yielded only
    once a verified checkpoint covers it: the entries after the newest checkpoint are held
    back (:func:`follow` yields them when the next checkpoint arrives). Without public keys
    the entries are only chain-checked, which anyone who can write the directory can redo:
    use that only for data whose consumers are told it is unverified.
    The first failure raises :class:`ChainBroken`; entries before the last verified
    checkpoint before it have been yielded, none after. Personal fields are decrypted with
    ``subject_keys``, by default the ``subject-keys.sqlite3`` store in ``directory`` when it
    exists; a line still being written is not yielded. Records pruned by retention are
    skipped. To tail a live log,
    use :func:`follow`, or call this again with ``after_seq`` set to the last ``seq`` seen.
    At the end, ``on_unsigned_tail(first, last)`` is called if entries were held back.
    ``origin`` is the log the caller expects: every checkpoint and the anchor must name it,
    and a directory claiming another raises :class:`ChainBroken` before anything is yielded
    (without it, the directory's own ``origin`` file is taken).
    """
    cursor = _Cursor(Path(directory), after_seq, public_keys, subject_keys, origin)
    try:
        while True:
            batch = cursor.poll()
            if not batch:
                cursor.finish()
                held = cursor.unconfirmed
                if held is not None and on_unsigned_tail is not None:
                    on_unsigned_tail(*held)
                return
            yield from batch
    finally:
        cursor.close()


def follow(
    directory: str | Path,
    *,
    after_seq: int | None = None,
    public_keys: Iterable[str | Path | PublicKey] | Keyring | None = None,
    subject_keys: SubjectKeys | None = None,
    poll_interval: float = 0.2,
    stop: threading.Event | None = None,
    origin: str | None = None,
) -> Iterator[LogEntry]:
    """Like :func:`read_verified`, then keep waiting for new entries until ``stop`` is set.

    New lines are picked up every ``poll_interval`` seconds, across segment rotations.
    """
    cursor = _Cursor(Path(directory), after_seq, public_keys, subject_keys, origin)
    try:
        while stop is None or not stop.is_set():
            batch = cursor.poll()
            if batch:
                yield from batch
            elif stop is not None:
                stop.wait(poll_interval)
            else:
                time.sleep(poll_interval)
    finally:
        cursor.close()


class _Cursor:
    """Incremental, chain-checking reader of one audit directory."""

    def __init__(
        self,
        directory: Path,
        after_seq: int | None,
        public_keys: Iterable[str | Path | PublicKey] | Keyring | None,
        subject_keys: SubjectKeys | None,
        origin: str | None = None,
    ) -> None:
        if not directory.is_dir():
            raise AuditLogError(f"{directory} is not an audit log directory")
        claimed = read_origin(directory)
        if origin is not None and claimed is not None and claimed != origin:
            raise ChainBroken(
                after_seq + 1 if after_seq is not None else 0,
                f"the log in {directory} is {claimed!r}, not the expected {origin!r}",
            )
        self.directory = directory
        self.format = read_format(directory)
        self.start = 0 if after_seq is None else after_seq + 1
        if public_keys is None or isinstance(public_keys, Keyring):
            self.keyring = public_keys
        else:
            self.keyring = Keyring.load(public_keys)
        self._own_keys: SqliteSubjectKeys | None = None
        if subject_keys is None and (directory / DEFAULT_SUBJECT_KEYS).exists():
            subject_keys = self._own_keys = SqliteSubjectKeys(directory / DEFAULT_SUBJECT_KEYS)
        self.subject_keys = subject_keys
        self.segment: Segment | None = None
        self.offset = 0
        self.rest = b""
        self.seq = 0
        self.prev = GENESIS
        self.tree: CompactRange | None = None
        self.pending: list[SignedCheckpoint] = []
        self.checked_upto = -1
        self.origin = origin if origin is not None else claimed
        self.broken: ChainBroken | None = None
        self.ready: list[LogEntry] = []
        self.held: list[LogEntry] = []
        """Entries read but not yet covered by a verified checkpoint (with a keyring)."""

    def close(self) -> None:
        if self._own_keys is not None:
            self._own_keys.close()

    def _open_first(self) -> bool:
        segments = list_segments(self.directory)
        if not segments:
            return False
        anchor = read_anchor(self.directory)
        start = max(self.start, anchor.size if anchor else 0)
        chosen = segments[0]
        for seg in segments:
            if seg.first <= start:
                chosen = seg
        self.start = start
        self._enter(chosen, segments)
        return True

    def _enter(self, seg: Segment, segments: list[Segment]) -> None:
        anchor = read_anchor(self.directory)
        if anchor is not None and self.keyring is not None:
            problem = anchor_problem(anchor, self.keyring, self.origin)
            if problem is not None:
                raise ChainBroken(anchor.size, problem)
        first_of_log = segments[0].first
        if seg.first == 0:
            self.prev = GENESIS
        elif anchor is not None and seg.first == anchor.size:
            self.prev = anchor.prev
        elif seg.first != first_of_log:
            index = segments.index(seg)
            self.prev = hash_of_last_line(segments[index - 1].path, self.format)
        else:
            raise ChainBroken(seg.first, "the log's first segment does not start at seq 0")
        if self.keyring is not None:
            if anchor is not None and seg.first == anchor.size:
                self.tree = CompactRange(anchor.size, anchor.range)
            elif seg.first == 0:
                self.tree = CompactRange()
            else:
                tree = TreeFiles(self.directory)
                try:
                    self.tree = tree.compact_range(seg.first)
                finally:
                    tree.close()
        self.segment = seg
        self.offset = 0
        self.rest = b""
        self.seq = seg.first
        self._load_checkpoints()

    def _load_checkpoints(self) -> None:
        if self.keyring is None or self.segment is None:
            return
        notes = read_notes(self.segment.checkpoints)
        fresh: list[SignedCheckpoint] = []
        for note in notes:
            if isinstance(note, ValueError):
                raise ChainBroken(self.seq, f"malformed checkpoint: {note}")
            if note.checkpoint.size > self.checked_upto:
                fresh.append(note)
        fresh.sort(key=lambda c: c.checkpoint.size)
        self.pending = fresh

    def poll(self) -> list[LogEntry]:
        """The entries that became readable since the last call (possibly none).

        A break found after some good entries is raised on the next call, so that the good
        entries are delivered first.
        """
        if self.broken is None:
            try:
                self._poll()
            except ChainBroken as exc:
                first = self.held[0].seq if self.held else exc.seq
                self.broken = ChainBroken(exc.seq, exc.reason, first)
                self.held = []
        out, self.ready = self.ready, []
        if not out and self.broken is not None:
            raise self.broken
        return out

    @property
    def unconfirmed(self) -> tuple[int, int] | None:
        """The first and last seq read but held back for want of a verified checkpoint."""
        if not self.held:
            return None
        return self.held[0].seq, self.held[-1].seq

    def _poll(self) -> None:
        if self.segment is None and not self._open_first():
            return
        while self.segment is not None:
            data = _read_from(self.segment.path, self.offset)
            self.offset += len(data)
            data = self.rest + data
            cut = data.rfind(b"\n") + 1
            self.rest = data[cut:]
            if cut:
                self._load_checkpoints()
                for line in data[: cut - 1].split(b"\n"):
                    self._accept(line)
            nxt = self._next_segment()
            if nxt is None:
                return
            if self.rest or _read_from(self.segment.path, self.offset):
                if self.rest:
                    raise ChainBroken(self.seq, "a sealed segment ends with a partial line")
                continue
            if nxt.first != self.seq:
                raise ChainBroken(
                    self.seq,
                    f"records {self.seq}..{nxt.first - 1} are missing: the next segment "
                    f"starts at {nxt.first}",
                )
            self._check_pending(final=True)
            prev, tree = self.prev, self.tree
            self.segment = nxt
            self.offset = 0
            self.rest = b""
            self._load_checkpoints()
            self.prev, self.tree = prev, tree

    def finish(self) -> None:
        """At the end of a one-pass read: a checkpoint beyond the last line means truncation."""
        if self.broken is not None:
            raise self.broken
        self._check_pending(final=True)

    def _check_pending(self, final: bool) -> None:
        if self.keyring is None or self.tree is None:
            return
        size = self.tree.size
        for note in self.pending:
            if note.checkpoint.size > size and final:
                raise ChainBroken(
                    size,
                    f"truncated: a checkpoint covers {note.checkpoint.size} records, "
                    f"the log has {size}",
                )

    def _next_segment(self) -> Segment | None:
        current = self.segment.first if self.segment is not None else -1
        later = [s for s in list_segments(self.directory) if s.first > current]
        return later[0] if later else None

    def _accept(self, line: bytes) -> None:
        """Check one line; its entry joins :attr:`ready`, or :attr:`held` until signed."""
        seq = self.seq
        h = line_leaf(self.format, line)
        try:
            value = parse_line(line)
        except ValueError as exc:
            raise ChainBroken(seq, f"line is not a valid audit record ({exc})") from None
        if value["seq"] != seq:
            raise ChainBroken(seq, f"expected seq {seq}, found seq {value['seq']}")
        if value["prev"] != self.prev:
            raise ChainBroken(seq, "its prev hash does not match the line before it")
        self.prev = h.hex()
        self.seq = seq + 1
        if seq >= self.start:
            record, erased = self._record(value, seq)
            entry = LogEntry(seq, record, self.prev, line, erased)
            (self.ready if self.keyring is None else self.held).append(entry)
        if self.tree is not None:
            self.tree.append(h)
            self._check_checkpoints(seq)

    def _check_checkpoints(self, seq: int) -> None:
        if self.tree is None or self.keyring is None:
            return
        size = self.tree.size
        while self.pending and self.pending[0].checkpoint.size <= size:
            note = self.pending.pop(0)
            if note.checkpoint.size < size:
                continue
            status = note.status(self.keyring)
            if status is CheckpointStatus.FORGED:
                raise ChainBroken(seq, f"the checkpoint for size {size} has a forged signature")
            if status is CheckpointStatus.UNKNOWN_KEY:
                raise ChainBroken(seq, f"the checkpoint for size {size} is signed by no known key")
            if self.origin is not None and note.checkpoint.origin != self.origin:
                raise ChainBroken(
                    seq, f"the checkpoint for size {size} names origin {note.checkpoint.origin!r}"
                )
            if note.checkpoint.root != self.tree.root():
                raise ChainBroken(seq, f"records up to {seq} do not match the signed checkpoint")
            self.checked_upto = size
            self.ready += self.held
            self.held = []

    def _record(self, value: dict[str, Any], seq: int) -> tuple[AuditRecord, bool]:
        rec = dict(value["rec"])
        sealed = value.get("sealed")
        erased = False
        if isinstance(sealed, dict):
            key = None
            keys = self.subject_keys
            if keys is not None:
                ref = str(sealed.get("ref"))
                if not ref.startswith(RECORD_REF_PREFIX):
                    key = keys.key_for(ref, create=False)
                elif isinstance(keys, RecordRefs):
                    key = keys.record_key(ref)
                number = sealed.get("key")
                if key is None and type(number) is int and isinstance(keys, ReservedSubjectKeys):
                    # written before its key's assignment was committed
                    key = keys.reserved_key(number)
            fields = unseal(sealed, str(rec.get("id")), key)
            if fields is None:
                marker = ERASED if self.subject_keys is not None else SEALED
                erased = self.subject_keys is not None
                fields = {name: marker for name in SEALED_FIELDS if name not in rec}
                fields = {k: v for k, v in fields.items() if k in _sealed_names(sealed)}
            rec.update(fields)
        try:
            return AuditRecord.from_dict(rec), erased
        except (ValueError, TypeError, KeyError) as exc:
            raise ChainBroken(seq, f"the record cannot be read back ({exc})") from None


def _sealed_names(sealed: dict[str, Any]) -> tuple[str, ...]:
    names = sealed.get("fields")
    if isinstance(names, str):
        return tuple(n for n in names.split(",") if n in SEALED_FIELDS)
    return SEALED_FIELDS


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def hash_of_last_line(path: Path, log_format: int) -> str:
    """The line hash (in ``log_format``) of the last complete line of a sealed segment."""
    size = os.path.getsize(path)
    chunk = 4096
    with open(path, "rb") as f:
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            data = f.read(size - start)
            body = data[:-1] if data.endswith(b"\n") else data
            cut = body.rfind(b"\n")
            if cut >= 0 or start == 0:
                line = body[cut + 1 :]
                return line_leaf(log_format, line).hex()
            chunk *= 4
