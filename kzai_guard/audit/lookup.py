"""Finding one record or one checkpoint of an audit directory without reading the whole log.

- :func:`find_record` by sequence number: the segment is chosen by its name, the line by a
  binary search on byte offsets (every line ends with its ``seq``), O(log n) reads.
- :func:`find_record` by record id: through each sealed segment's id index
  (:mod:`kzai_guard.audit.index`), two small reads (the index header, the segment's last line)
  for a segment whose id range cannot hold the id and one 4 KiB block more for one that can;
  the active segment, which has no index yet, is scanned (it is bounded by
  ``segment_max_bytes``). A segment whose index is missing, damaged or another segment's is
  scanned too: slower, never a different answer.
- :func:`newest_checkpoint` reads the tail of the newest checkpoint file,
  :func:`checkpoint_at` the one checkpoint file whose segment a size falls in.

A :class:`LogLookup` lists the directory once for several lookups (a proof bundle makes one);
the functions make one each.

Every line found is checked (a canonical line with the ``seq`` and ``id`` asked for); whether
it is the line the log signed is what the inclusion proof then shows.
"""

from __future__ import annotations

import bisect
import mmap
import os
import re
from collections.abc import Iterable
from pathlib import Path

import orjson

from kzai_guard.audit.checkpoint import SignedCheckpoint, parse_notes, read_notes
from kzai_guard.audit.index import IdIndex
from kzai_guard.audit.segments import (
    SEQ_MARKER,
    Segment,
    parse_line,
    read_anchor,
    read_origin,
    segment_paths,
)
from kzai_guard.errors import AuditLogError

__all__ = [
    "LogLookup",
    "checkpoint_at",
    "find_record",
    "newest_checkpoint",
    "recent_checkpoints",
]

_PROBE = 4096
_SCAN_BELOW = 65_536
"""Below this many bytes, the binary search reads the rest and splits it into lines."""
_TAIL = 8192
_SEGMENT_NAME = re.compile(r"^\d{20}\.log$")


class LogLookup:
    """One look at an audit directory, for several lookups.

    The segment names, the anchor and the origin are read once, when it is made; paths are
    made only for the segments a lookup opens. Make a new one to see later changes.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.anchor = read_anchor(self.directory)
        self.origin = read_origin(self.directory)
        firsts = sorted(
            int(name[:20])
            for name in os.listdir(self.directory)
            if name.endswith(".log") and _SEGMENT_NAME.match(name)
        )
        start = self.anchor.size if self.anchor is not None else 0
        self.firsts = firsts
        """First sequence numbers of every segment, in order."""
        self.retained = firsts[bisect.bisect_left(firsts, start) :]
        """Those of the retained log: from the anchor on."""

    def segment(self, first: int) -> Segment:
        """The segment starting at ``first``."""
        return segment_paths(self.directory, first)

    def find_record(
        self, *, decision_id: str | None = None, seq: int | None = None
    ) -> tuple[int, bytes]:
        """See :func:`find_record`."""
        if decision_id is not None and seq is None:
            found = self._by_id(decision_id)
        elif seq is not None and decision_id is None:
            found = self._by_seq(seq)
        else:
            raise ValueError("give a decision_id or a seq, not both")
        if found is None:
            what = f"decision {decision_id!r}" if decision_id is not None else f"seq {seq}"
            raise AuditLogError(f"{what} is not in the retained log {self.directory}")
        return found

    def _by_seq(self, seq: int) -> tuple[int, bytes] | None:
        firsts = self.retained
        at = bisect.bisect_right(firsts, seq) - 1
        if at < 0 or seq < 0:
            return None
        if at + 1 < len(firsts) and seq >= firsts[at + 1]:
            return None
        seg = self.segment(firsts[at])
        line = line_at(seg, seq)
        if line is None:
            # a line that does not end with its seq: read the segment by position instead
            line = _nth_line(seg, seq - seg.first)
        if line is None:
            return None
        return seq, line

    def _by_id(self, decision_id: str) -> tuple[int, bytes] | None:
        needle = b'"id":' + orjson.dumps(decision_id)
        firsts = self.retained
        for at, first in enumerate(firsts):
            seg = self.segment(first)
            index = None
            if at + 1 < len(firsts):
                index = IdIndex.open(seg, firsts[at + 1] - first)
            if index is not None and not index.matches_segment():
                index.close()
                index = None
            if index is None:
                found = _scan(seg, needle, decision_id)
                if found is not None:
                    return found
                continue
            try:
                if not index.may_hold(decision_id):
                    continue
                candidates = index.lookup(decision_id)
            finally:
                index.close()
            if candidates is None:
                found = _scan(seg, needle, decision_id)
            else:
                found = _first_match(seg, candidates, needle, decision_id)
            if found is not None:
                return found
        return None

    def newest_checkpoint(self) -> SignedCheckpoint | None:
        """See :func:`newest_checkpoint`."""
        notes = self.recent_checkpoints(1)
        return notes[-1] if notes else None

    def recent_checkpoints(self, count: int) -> list[SignedCheckpoint]:
        """See :func:`recent_checkpoints`."""
        found: list[SignedCheckpoint] = []
        for first in reversed(self.firsts):
            notes = _last_notes(self.segment(first).checkpoints, self.origin, count - len(found))
            found[:0] = notes
            if len(found) >= count:
                return found
        if self.anchor is not None:
            found.insert(0, SignedCheckpoint.parse(self.anchor.checkpoint))
        return found

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        """See :func:`checkpoint_at`."""
        anchor = self.anchor
        if anchor is not None and size <= anchor.size:
            return SignedCheckpoint.parse(anchor.checkpoint) if size == anchor.size else None
        # a checkpoint for ``size`` is taken while the segment holding record ``size - 1`` is
        # active; the next segment is looked at too
        at = bisect.bisect_left(self.firsts, size) - 1
        for first in self.firsts[max(at, 0) : at + 2]:
            note = _note_of_size(self.segment(first).checkpoints, self.origin, size)
            if note is not None:
                return note
        return None


def find_record(
    directory: str | os.PathLike[str], *, decision_id: str | None = None, seq: int | None = None
) -> tuple[int, bytes]:
    """``(seq, line)`` of the first record with ``id == decision_id``, or of record ``seq``.

    Give exactly one of the two. Raises :class:`~kzai_guard.errors.AuditLogError` if the
    retained log has no such record.
    """
    return LogLookup(directory).find_record(decision_id=decision_id, seq=seq)


def newest_checkpoint(directory: str | os.PathLike[str]) -> SignedCheckpoint | None:
    """The log's newest well-formed checkpoint (the anchor's, if no segment has one)."""
    return LogLookup(directory).newest_checkpoint()


def recent_checkpoints(directory: str | os.PathLike[str], count: int) -> list[SignedCheckpoint]:
    """Up to ``count`` of the log's newest well-formed checkpoints, oldest first.

    Reads the tails of the newest checkpoint files only.
    """
    return LogLookup(directory).recent_checkpoints(count)


def checkpoint_at(directory: str | os.PathLike[str], size: int) -> SignedCheckpoint | None:
    """The newest well-formed checkpoint for exactly ``size`` records, if the log has one."""
    return LogLookup(directory).checkpoint_at(size)


def _first_match(
    seg: Segment, candidates: list[int], needle: bytes, decision_id: str
) -> tuple[int, bytes] | None:
    for seq in candidates:
        line = line_at(seg, seq)
        if line is None:
            # the index points into a segment that cannot be searched: trust neither
            return _scan(seg, needle, decision_id)
        if _is_record(line, decision_id, seq):
            return seq, line
    return None  # only other ids with the same key


def _is_record(line: bytes, decision_id: str, seq: int) -> bool:
    try:
        value = parse_line(line)
    except ValueError:
        return False
    return bool(value["seq"] == seq and value["rec"].get("id") == decision_id)


def _scan(seg: Segment, needle: bytes, decision_id: str) -> tuple[int, bytes] | None:
    """The first complete line of ``seg`` whose record id is ``decision_id``."""
    try:
        with open(seg.path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return None
            # mapped, not read: a 64 MiB segment is searched without being copied
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _scan_bytes(data, needle, decision_id)
    except FileNotFoundError:
        return None


def _scan_bytes(data: mmap.mmap, needle: bytes, decision_id: str) -> tuple[int, bytes] | None:
    pos = data.find(needle)
    while pos >= 0:
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        if end < 0:
            return None  # a line still being written
        line = data[start:end]
        try:
            value = parse_line(line)
        except ValueError:
            value = None
        if value is not None and value["rec"].get("id") == decision_id:
            return int(value["seq"]), line
        pos = data.find(needle, end)
    return None


def line_at(seg: Segment, seq: int) -> bytes | None:
    """The complete line of ``seg`` that ends with sequence number ``seq``, by binary search.

    ``None`` if there is none or the segment's lines do not end with ascending numbers.
    """
    try:
        fd = os.open(seg.path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return _search(fd, os.fstat(fd).st_size, seg.first, seq)
    finally:
        os.close(fd)


def _search(fd: int, size: int, first: int, seq: int) -> bytes | None:
    # invariant: a line starts at ``lo``, and the line for ``seq`` (if any) starts in [lo, hi)
    lo, hi = 0, size
    if seq < first:
        return None
    while hi - lo > _SCAN_BELOW:
        mid = (lo + hi) // 2
        start, line = _line_after(fd, mid - 1, hi)
        if line is None:
            hi = mid
            continue
        found = _tail_seq(line)
        if found is None:
            return None
        if found == seq:
            return line
        if found < seq:
            lo = start + len(line) + 1
        else:
            hi = start
    if hi <= lo:
        return None  # the window closed: no line ends with ``seq``
    data = os.pread(fd, hi - lo, lo)
    for line in data.split(b"\n")[:-1]:
        found = _tail_seq(line)
        if found == seq:
            return line
    return _continue_after(fd, lo + len(data), seq, data)


def _continue_after(fd: int, offset: int, seq: int, data: bytes) -> bytes | None:
    # the window ended inside a line: that line may be the one
    if data.endswith(b"\n") or not data:
        return None
    head = data[data.rfind(b"\n") + 1 :]
    chunk = _PROBE
    while True:
        more = os.pread(fd, chunk, offset)
        cut = more.find(b"\n")
        if cut >= 0:
            line = head + more[:cut]
            return line if _tail_seq(line) == seq else None
        if len(more) < chunk:
            return None
        head += more
        offset += len(more)
        chunk *= 2


def _line_after(fd: int, offset: int, limit: int) -> tuple[int, bytes | None]:
    """The first complete line that starts after byte ``offset`` and before ``limit``."""
    chunk = _PROBE
    while True:
        data = os.pread(fd, chunk, offset)
        cut = data.find(b"\n")
        if cut >= 0:
            start = offset + cut + 1
            if start >= limit:
                return start, None
            end = data.find(b"\n", cut + 1)
            if end >= 0:
                return start, data[cut + 1 : end]
        if len(data) < chunk:
            return offset, None
        chunk *= 2


def _tail_seq(line: bytes) -> int | None:
    cut = line.rfind(SEQ_MARKER)
    if cut < 0 or not line.endswith(b"}"):
        return None
    digits = line[cut + len(SEQ_MARKER) : -1]
    return int(digits) if digits.isdigit() else None


def _nth_line(seg: Segment, n: int) -> bytes | None:
    try:
        lines = seg.path.read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:
        return None
    return lines[n] if 0 <= n < len(lines) else None


def _last_notes(path: Path, origin: str | None, count: int) -> list[SignedCheckpoint]:
    if origin is None:
        return _good(read_notes(path))[-count:]
    marker = b"\n\n" + origin.encode() + b"\n"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        size = os.fstat(fd).st_size
        chunk = _TAIL
        while True:
            start = max(0, size - chunk)
            data = os.pread(fd, size - start, start)
            # where the newest notes begin: one more than asked for, the newest may be torn
            begin, end, found = -1, len(data), 0
            while found <= count:
                cut = data.rfind(marker, 0, end)
                if cut < 0:
                    break
                begin, end, found = cut + 2, cut, found + 1
            if begin >= 0:
                good = _good(parse_notes(data[begin:].decode("utf-8", errors="replace")))
                if len(good) >= count:
                    return good[-count:]
            if start == 0:
                return _good(parse_notes(data.decode("utf-8", errors="replace")))[-count:]
            chunk *= 4
    finally:
        os.close(fd)


def _good(notes: Iterable[SignedCheckpoint | ValueError]) -> list[SignedCheckpoint]:
    return [n for n in notes if isinstance(n, SignedCheckpoint)]


def _note_of_size(path: Path, origin: str | None, size: int) -> SignedCheckpoint | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if origin is None:
        notes = parse_notes(data.decode("utf-8", errors="replace"))
        found = [n for n in notes if isinstance(n, SignedCheckpoint) and n.checkpoint.size == size]
        return found[-1] if found else None
    body = origin.encode() + b"\n%d\n" % size
    pos = len(data)
    while True:
        pos = data.rfind(body, 0, pos)
        if pos < 0:
            return None
        if pos == 0 or data[pos - 2 : pos] == b"\n\n":
            notes = parse_notes(data[pos:].decode("utf-8", errors="replace"))
            note = next(notes, None)
            if isinstance(note, SignedCheckpoint) and note.checkpoint.size == size:
                return note
