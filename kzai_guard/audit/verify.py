"""Verifying a whole audit directory: every line, the chain, every checkpoint and signature.

:func:`verify_log` reads the segments in order, a run of lines at a time (up to the next
checkpoint): per line one SHA-256 (the line hash is the Merkle leaf hash), a comparison of the
line's start with ``{"prev":"`` and the hex hash of the line before, and of its end with
``,"seq":N}``; then the tree is extended by the whole run, one node hash per line amortised.
Each check runs over the whole run in C (``map``), not in a Python loop per line. Only when
something does not match is the line parsed, to say what is wrong; to tell a reordering from
a gap, the lines after it are searched, across segment ends. At each checkpoint size the tree
root is compared with the signed root, and the signature with the keyring.

The first problem ends the run and is reported as a :class:`Problem`: the first sequence
number in doubt and one of the :data:`PROBLEM_KINDS`.
"""

from __future__ import annotations

import binascii
import functools
import os
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kzai_guard.audit.anchor_signature import anchor_problem
from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring
from kzai_guard.audit.leaf import line_leaf
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.segments import (
    GENESIS,
    LINE_PREFIX,
    SEQ_MARKER,
    Segment,
    list_segments,
    parse_line,
    read_anchor,
    read_format,
    read_origin,
    segment_paths,
)
from kzai_guard.audit.tree import TreeFiles
from kzai_guard.errors import AuditLogError

__all__ = ["PROBLEM_KINDS", "Problem", "VerifyReport", "orphan_checkpoints", "verify_log"]

PROBLEM_KINDS = (
    "altered",
    "missing",
    "duplicated",
    "reordered",
    "truncated",
    "forged-checkpoint",
    "unknown-key-checkpoint",
    "malformed-checkpoint",
    "unsigned-tail",
    "broken-anchor",
    "wrong-origin",
    "rolled-back",
    "forked",
    "unwitnessed",
    "unknown-format",
)
"""What :attr:`Problem.kind` can be."""

_unhexlify = binascii.unhexlify
_hexlify = binascii.hexlify
_PREFIX = LINE_PREFIX.__add__
_SEQ_TAIL = b',"seq":%d}'.__mod__
_LOOKAHEAD = 4096


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing found wrong: at record ``seq``, of kind ``kind``, explained by ``message``.

    ``kind`` is one of :data:`PROBLEM_KINDS`.
    """

    seq: int
    kind: str
    message: str


@dataclass(slots=True)
class VerifyReport:
    """The outcome of :func:`verify_log`.

    ``records`` lines were checked, starting at ``first_seq`` (0, or the anchor of a pruned log);
    ``checkpoints`` signed checkpoints matched the tree; ``signed_size`` is the size of the newest
    one; ``problem`` is ``None`` when everything holds.
    """

    directory: str
    first_seq: int = 0
    records: int = 0
    checkpoints: int = 0
    signed_size: int = 0
    key_names: list[str] = field(default_factory=list)
    problem: Problem | None = None
    roots: dict[int, str] = field(default_factory=dict)
    """The hex tree root at each size asked for with ``roots_at`` that the log reaches."""
    witnessed_size: int | None = None
    """The size of the checkpoint whose cosignatures were counted (witness policy only)."""
    cosigners: list[str] = field(default_factory=list)
    """The trusted witnesses that cosigned it."""

    @property
    def ok(self) -> bool:
        """True if no problem was found."""
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["ok"] = self.ok
        return out


def orphan_checkpoints(path: Path, segments: list[Segment], first: int) -> list[Segment]:
    """The segments from ``first`` on whose checkpoint file remains but whose lines are gone."""
    present = {seg.first for seg in segments}
    out = []
    for name in os.listdir(path):
        stem, dot, suffix = name.partition(".")
        if suffix == "checkpoints" and dot and stem.isdigit() and len(stem) == 20:
            number = int(stem)
            if number >= first and number not in present:
                out.append(segment_paths(path, number))
    return sorted(out, key=lambda s: s.first)


class _Stop(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def verify_log(
    directory: str | os.PathLike[str],
    keyring: Keyring,
    *,
    allow_unsigned_tail: bool = False,
    progress: Callable[[int, int], None] | None = None,
    origin: str | None = None,
    roots_at: Collection[int] = (),
) -> VerifyReport:
    """Check every line, the hash chain, every checkpoint's root and every signature.

    Records after the newest checkpoint are a problem (``unsigned-tail``) unless
    ``allow_unsigned_tail`` (useful on a live log, whose newest records are not yet signed).
    ``progress(bytes_done, bytes_total)`` is called after each segment and every 64 MiB.
    ``origin`` is the origin the auditor expects; every checkpoint must name it, and a
    directory claiming another is a ``wrong-origin`` problem (without it, the directory's own
    ``origin`` file is taken). The root of the verified lines at each size in ``roots_at`` is
    recorded in :attr:`VerifyReport.roots`.
    Raises :class:`~kzai_guard.errors.AuditLogError` if ``directory`` is not an audit log.
    """
    path = Path(directory)
    if not path.is_dir():
        raise AuditLogError(f"{path} is not a directory")
    report = VerifyReport(str(path))
    try:
        _Verifier(path, keyring, report, progress, origin, roots_at).run(allow_unsigned_tail)
    except _Stop as stop:
        report.problem = stop.problem
    return report


class _Verifier:
    def __init__(
        self,
        path: Path,
        keyring: Keyring,
        report: VerifyReport,
        progress: Callable[[int, int], None] | None,
        origin: str | None = None,
        roots_at: Collection[int] = (),
    ) -> None:
        self.path = path
        self.keyring = keyring
        self.report = report
        self.progress = progress
        claimed = read_origin(path)
        if origin is not None and claimed is not None and claimed != origin:
            raise _Stop(
                Problem(
                    0,
                    "wrong-origin",
                    f"the log in {path} is {claimed!r}, not the expected {origin!r}",
                )
            )
        self.origin = origin if origin is not None else claimed
        try:
            # the format only changes what the tree commits to: a wrong marker makes every
            # root differ from the signed checkpoints
            self.format = read_format(path)
        except AuditLogError as exc:
            raise _Stop(Problem(0, "unknown-format", str(exc))) from None
        self.roots_at = sorted(set(roots_at))
        self.index = TreeFiles(path)
        self.keys_seen: set[str] = set()

    def run(self, allow_unsigned_tail: bool) -> None:
        report = self.report
        anchor = read_anchor(self.path)
        segments = list_segments(self.path)
        if anchor is not None:
            segments = [s for s in segments if s.first >= anchor.size]
            problem = anchor_problem(anchor, self.keyring, self.origin)
            if problem is not None:
                raise _Stop(Problem(anchor.size, "broken-anchor", problem))
            tree = CompactRange(anchor.size, anchor.range)
            prev = _unhexlify(anchor.prev)
            anchor_note = SignedCheckpoint.parse(anchor.checkpoint)
            self._check_signature(anchor_note, anchor.size - 1)
        else:
            tree = CompactRange()
            prev = _unhexlify(GENESIS)
        seq = tree.size
        report.first_seq = seq
        notes: list[SignedCheckpoint] = []
        # a checkpoint file whose segment is gone still says how far the log went
        for seg in [*segments, *orphan_checkpoints(self.path, segments, seq)]:
            for note in read_notes(seg.checkpoints):
                if isinstance(note, ValueError):
                    raise _Stop(
                        Problem(seg.first, "malformed-checkpoint", f"{seg.checkpoints}: {note}")
                    )
                if note.checkpoint.size > seq:
                    notes.append(note)
        notes.sort(key=lambda n: n.checkpoint.size)
        total = sum(s.path.stat().st_size for s in segments)
        done = 0
        cp_index = 0
        next_cp = notes[0].checkpoint.size if notes else -1
        wanted = [size for size in self.roots_at if size >= seq]
        if wanted and wanted[0] == seq:
            report.roots[seq] = tree.root().hex()
            wanted.pop(0)
        since_cp: list[bytes] = []
        cp_start = seq
        leaf = functools.partial(line_leaf, self.format)
        for seg_no, seg in enumerate(segments):
            if seg.first != seq:
                kind = "missing" if seg.first > seq else "duplicated"
                raise _Stop(
                    Problem(
                        seq, kind, f"segment {seg.path.name} starts at {seg.first}, expected {seq}"
                    )
                )
            data = seg.path.read_bytes()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                torn_at = seq + data.count(b"\n", 0, cut)
                last = seg_no == len(segments) - 1
                raise _Stop(
                    Problem(
                        torn_at,
                        "truncated",
                        f"{seg.path.name} ends inside the line for seq {torn_at}"
                        + (" (an unrepaired crash: open the log to repair it)" if last else ""),
                    )
                )
            lines = data.split(b"\n")
            lines.pop()
            pos = 0
            while pos < len(lines):
                # up to the next checkpoint at most, so its root can be compared
                stop = len(lines) if next_cp < 0 else min(len(lines), pos + next_cp - seq)
                if wanted:
                    stop = min(stop, pos + wanted[0] - seq)
                chunk = lines[pos:stop]
                hashes = list(map(leaf, chunk))
                prevs = [prev, *hashes[:-1]]
                # a canonical line starts with its prev hash and ends with its seq
                if not (
                    all(map(bytes.startswith, chunk, map(_PREFIX, map(_hexlify, prevs))))
                    and all(
                        map(bytes.endswith, chunk, map(_SEQ_TAIL, range(seq, seq + len(chunk))))
                    )
                ):
                    bad = next(
                        i
                        for i, line in enumerate(chunk)
                        if not (
                            line.startswith(LINE_PREFIX + _hexlify(prevs[i]))
                            and line.endswith(b',"seq":%d}' % (seq + i))
                        )
                    )
                    window = _window(segments, seg_no, lines, pos + bad)
                    in_segment = len(lines) - pos - bad
                    self._classify(window, in_segment, seq + bad, prevs[bad], hashes[bad])
                tree.extend(hashes)
                since_cp += hashes
                prev = hashes[-1]
                seq += len(chunk)
                pos = stop
                if wanted and seq == wanted[0]:
                    report.roots[seq] = tree.root().hex()
                    wanted.pop(0)
                if seq == next_cp:
                    while cp_index < len(notes) and notes[cp_index].checkpoint.size == seq:
                        self._check_checkpoint(notes[cp_index], tree, since_cp, cp_start)
                        cp_index += 1
                    report.checkpoints = cp_index
                    report.signed_size = seq
                    since_cp = []
                    cp_start = seq
                    next_cp = notes[cp_index].checkpoint.size if cp_index < len(notes) else -1
            report.records = seq - report.first_seq
            done += len(data)
            if self.progress is not None:
                self.progress(done, total)
        report.key_names = sorted(self.keys_seen)
        if cp_index < len(notes):
            claimed = notes[-1].checkpoint.size
            raise _Stop(
                Problem(
                    seq,
                    "truncated",
                    f"the log ends before seq {seq} but a checkpoint covers {claimed} records",
                )
            )
        if seq > report.signed_size and not allow_unsigned_tail and seq > report.first_seq:
            raise _Stop(
                Problem(
                    report.signed_size,
                    "unsigned-tail",
                    f"records {report.signed_size}..{seq - 1} are not covered by a signed "
                    "checkpoint",
                )
            )

    def _check_signature(self, note: SignedCheckpoint, seq: int) -> None:
        status = note.status(self.keyring)
        size = note.checkpoint.size
        if status is CheckpointStatus.FORGED:
            raise _Stop(
                Problem(
                    seq, "forged-checkpoint", f"the checkpoint for size {size} has a bad signature"
                )
            )
        if status is CheckpointStatus.UNKNOWN_KEY:
            names = ", ".join(sorted({name for name, _, _ in note.signatures}))
            raise _Stop(
                Problem(
                    seq,
                    "unknown-key-checkpoint",
                    f"the checkpoint for size {size} is signed by no trusted key "
                    f"(signers: {names})",
                )
            )
        if self.origin is not None and note.checkpoint.origin != self.origin:
            raise _Stop(
                Problem(
                    seq,
                    "forged-checkpoint",
                    f"the checkpoint for size {size} names origin {note.checkpoint.origin!r}, "
                    f"the log is {self.origin!r}",
                )
            )
        for name, kid, _ in note.signatures:
            if self.keyring.get(name, kid) is not None:
                self.keys_seen.add(name)

    def _check_checkpoint(
        self, note: SignedCheckpoint, tree: CompactRange, since_cp: list[bytes], cp_start: int
    ) -> None:
        size = note.checkpoint.size
        self._check_signature(note, size - 1)
        if note.checkpoint.root == tree.root():
            return
        bad = self._first_index_mismatch(since_cp, cp_start)
        raise _Stop(
            Problem(
                cp_start if bad is None else bad,
                "altered",
                f"records {cp_start}..{size - 1} do not match the signed checkpoint for size {size}"
                if bad is None
                else f"record {bad} differs from the record the checkpoint for size {size} signed",
            )
        )

    def _first_index_mismatch(self, hashes: list[bytes], start: int) -> int | None:
        for i, h in enumerate(hashes):
            try:
                stored = self.index.get(0, start + i)
            except AuditLogError:
                return None
            if stored != h:
                return start + i
        return None

    def _classify(
        self, window: list[bytes], in_segment: int, seq: int, prev: bytes, h: bytes
    ) -> None:
        """Say what is wrong with ``window[0]``, the line for ``seq``; always raises ``_Stop``.

        ``window`` continues with the lines after it, into later segments; the first
        ``in_segment`` are in the same segment.
        """
        line = window[0]
        nxt = window[1] if in_segment > 1 else None
        try:
            value = parse_line(line)
        except ValueError:
            message = f"the line for seq {seq} is not a valid record"
            raise _Stop(Problem(seq, "altered", message)) from None
        found = value["seq"]
        next_value: dict[str, Any] | None = None
        if nxt is not None:
            try:
                next_value = parse_line(nxt)
            except ValueError:
                next_value = None
        links = value["prev"] == prev.hex()
        if found != seq and links:
            raise _Stop(Problem(seq, "altered", f"the line for seq {seq} claims seq {found}"))
        if found < seq:
            raise _Stop(Problem(seq, "duplicated", f"at seq {seq} the log repeats record {found}"))
        if found > seq:
            if any(_tail_seq(later) == seq for later in window[1:]):
                raise _Stop(Problem(seq, "reordered", f"record {seq} comes after record {found}"))
            raise _Stop(Problem(seq, "missing", f"records {seq}..{found - 1} are missing"))
        if value["prev"] != prev.hex():
            # Either this line's prev field or the line before it was changed. If the next line
            # still links to this one, this line is as written and the one before was altered.
            if next_value is not None:
                before_altered = next_value["prev"] == h.hex()
            else:
                try:
                    before_altered = self.index.get(0, seq) == h
                except AuditLogError:
                    before_altered = False
            if before_altered and seq > self.report.first_seq:
                raise _Stop(
                    Problem(
                        seq - 1,
                        "altered",
                        f"record {seq - 1} was changed: its hash no longer matches the prev of "
                        f"record {seq}",
                    )
                )
            raise _Stop(
                Problem(
                    seq, "altered", f"the prev hash of record {seq} does not match record {seq - 1}"
                )
            )
        raise _Stop(Problem(seq, "altered", f"the line for seq {seq} is not in canonical form"))


def _window(segments: list[Segment], seg_no: int, lines: list[bytes], pos: int) -> list[bytes]:
    """The line at ``pos`` and up to ``_LOOKAHEAD`` lines after it, across segment ends."""
    window = lines[pos : pos + _LOOKAHEAD + 1]
    for seg in segments[seg_no + 1 :]:
        if len(window) > _LOOKAHEAD:
            break
        window += seg.path.read_bytes().split(b"\n")[:-1][: _LOOKAHEAD + 1 - len(window)]
    return window


def _tail_seq(line: bytes) -> int:
    try:
        return int(line[line.rfind(SEQ_MARKER) + 7 : -1])
    except ValueError:
        return -1
