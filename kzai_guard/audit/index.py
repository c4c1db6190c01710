"""The record-id index of a sealed segment: finding a decision by id without reading the log.

``NNNN.index`` beside a sealed ``NNNN.log`` maps every record id of the segment to its sequence
number. It is written once, when the segment is sealed, by a background thread of the writer
(:class:`Indexer`), so appending never waits for it. The writer keeps what the index needs
while it appends (:class:`WrittenIds`: 4 bytes a record, not the ids), so the segment is not
read again; a segment the writer did not see whole, or whose ids it cannot vouch for, is
indexed from the segment itself (:func:`build_index`), and so are the sealed segments found
unindexed when a log is opened. Both ways give the same bytes. Each entry is 8 bytes,
``CRC-32(UTF-8 id) << 32 | (seq - first)``, and the entries are sorted, so a lookup is one
read of the header and fence and one read of a 4 KiB block, whatever the segment's size.
Different ids may share a key: a lookup returns candidate sequence numbers and the caller
checks each line.

Layout (integers big-endian)::

    magic    b"kzai-guard/id-index/v1\\n"
    header   first seq (8), entries (4), blocks (4), len(min id) (4), len(max id) (4),
             the line hash of the segment's last line (32),
             the smallest and the largest id of the segment (UTF-8),
             fence: the last entry of each block (8 each),
             CRC-32 of everything above (4)
    blocks   up to 512 entries (8 each), each block followed by the CRC-32 of its entries (4)

The index is derived data and is never trusted blindly: every byte a lookup uses is covered by
a CRC, so a damaged index is noticed (the lookup returns ``None`` and the caller scans the
segment instead); an index is used only for the segment whose first sequence number, record
count and last line it names; and a line found through it is checked against the id and the
sequence number asked for. The id range lets a lookup skip a segment after one small read:
record ids are UUIDv7, roughly time-ordered, so the ranges of successive segments barely
overlap.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import os
import re
import struct
import sys
import threading
import zlib
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from kzai_guard.audit.leaf import line_leaf
from kzai_guard.audit.reader import hash_of_last_line
from kzai_guard.audit.segments import Segment, fsync_directory, read_format

__all__ = [
    "INDEX_SUFFIX",
    "IdIndex",
    "Indexer",
    "WrittenIds",
    "build_index",
    "build_index_from",
    "index_path",
    "line_id",
    "record_key",
    "unindexed",
]

INDEX_SUFFIX = ".index"
_MAGIC = b"kzai-guard/id-index/v1\n"
_FIXED = struct.Struct(">QIIII32s")
_CRC = struct.Struct(">I")
_BLOCK = 512
"""Entries per block: one block is a 4 KiB read."""
_ENTRY = 8
_FIRST_READ = 8192
_READ_CHUNK = 4 << 20
_MAX_ENTRIES = 1 << 32
# The value of ``"id"`` in a canonical line. Inside string values every quote is escaped, so
# the pattern matches the record's own id exactly once per line. An id holding a backslash is
# read again with the exact pattern and decoded.
_ID_FAST = re.compile(rb'"id":"([^"]*)"')
_ID_EXACT = re.compile(rb'"id":"((?:[^"\\]|\\.)*)"')
_ID_MEMBER = b'"id":'
# where the key and the record number lie in the bytes of a native 64-bit ``key << 32 | n``
_KEY_AT, _N_AT = (4, 0) if sys.byteorder == "little" else (0, 4)
_crc32 = zlib.crc32
_log = logging.getLogger("kzai_guard.audit")


def index_path(seg: Segment) -> Path:
    """Where the index of ``seg`` lives."""
    return seg.path.with_suffix(INDEX_SUFFIX)


def record_key(record_id: str) -> int:
    """The 32-bit key of a record id in the index."""
    return _crc32(record_id.encode("utf-8", "surrogatepass"))


def build_index(seg: Segment) -> bool:
    """Write the index of the sealed segment ``seg`` from its file (atomically); False if not.

    Nothing is written when the segment is not a clean run of complete lines with one record
    id each (a damaged segment is left to ``kzai-guard verify``; lookups then scan it).
    """
    found = _record_ids(seg.path)
    if found is None or len(found[0]) >= _MAX_ENTRIES:
        return False
    ids, last = found
    _write_index(seg, array("I", map(_crc32, ids)), min(ids), max(ids), last)
    return True


def build_index_from(seg: Segment, written: WrittenIds) -> bool:
    """Write the index of ``seg`` from what its writer kept, without reading the segment.

    The same bytes as :func:`build_index`. False, and nothing written, unless ``written``
    vouches for every line of ``seg`` (:attr:`WrittenIds.complete`).
    """
    count = len(written.keys)
    if not written.complete or written.first != seg.first or not 0 < count < _MAX_ENTRIES:
        return False
    os.stat(seg.path)  # FileNotFoundError if it was pruned meanwhile, as from the file
    _write_index(seg, written.keys, written.low, written.high, written.last)
    return True


def line_id(line: bytes, rec: dict[str, Any]) -> str | None:
    """The record id of ``line`` (whose parsed ``rec`` is given), as :func:`build_index` reads it.

    ``None`` unless the first ``"id":`` of the line is followed by the canonical JSON of
    ``rec["id"]``, a string: only then does the scan of the file read that very id there.
    """
    record_id = rec.get("id")
    at = line.find(_ID_MEMBER)
    if type(record_id) is not str or at < 0:
        return None
    try:
        encoded = orjson.dumps(record_id)
    except orjson.JSONEncodeError:
        return None
    return record_id if line.startswith(encoded, at + len(_ID_MEMBER)) else None


class WrittenIds:
    """What the index of the active segment needs, kept by its writer as it appends.

    Per record the 4-byte key of its id (:func:`record_key`), in order; the smallest and the
    largest UTF-8 id; the line hash of the last line. The ids themselves are not kept.

    ``complete`` turns false for good once the writer cannot vouch for every line of the
    segment: an id that is not a string of valid Unicode (a lone surrogate is written escaped,
    so only the file knows what a scan reads), a replayed line whose id a scan reads otherwise
    (:func:`line_id`), or lines it did not see. The segment is then indexed from its file.

    The index is the one :func:`build_index` writes whenever that one is written at all: a
    line holding a second ``"id":`` member (a record field that is neither text nor a number)
    makes the scan give up on the segment, while this index still maps every record's id.
    """

    __slots__ = ("complete", "first", "high", "keys", "last", "low")

    def __init__(self, first: int, *, complete: bool = True) -> None:
        self.first = first
        self.complete = complete
        self.keys = array("I")
        self.low = self.high = self.last = b""

    def add(self, ids: Iterable[str], last: bytes) -> None:
        """Add the ids of lines just appended, in order; ``last`` is the last one's line hash."""
        if not self.complete:
            return
        fresh = not self.keys
        try:
            raw = [i.encode() for i in ids]
            if not raw:
                return
            low, high = min(raw), max(raw)
            self.keys.extend(map(_crc32, raw))
        except (AttributeError, TypeError, UnicodeEncodeError):
            self.complete = False
            return
        if fresh or low < self.low:
            self.low = low
        if fresh or high > self.high:
            self.high = high
        self.last = last


def _write_index(seg: Segment, keys: array[int], low: bytes, high: bytes, last: bytes) -> None:
    """Write the index of ``seg``, whose n-th record's key is ``keys[n]``."""
    count = len(keys)
    entries = _entries(keys)
    blocks = math.ceil(count / _BLOCK)
    fence = array("Q", (entries[min((b + 1) * _BLOCK, count) - 1] for b in range(blocks)))
    entries.byteswap()
    fence.byteswap()
    header = b"".join(
        (_MAGIC, _FIXED.pack(seg.first, count, blocks, len(low), len(high), last), low, high)
    )
    header += fence.tobytes()
    parts = [header, _CRC.pack(_crc32(header))]
    body = entries.tobytes()
    for b in range(blocks):
        chunk = body[b * _BLOCK * _ENTRY : (b + 1) * _BLOCK * _ENTRY]
        parts += (chunk, _CRC.pack(_crc32(chunk)))
    target = index_path(seg)
    tmp = target.with_suffix(INDEX_SUFFIX + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(b"".join(parts))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_directory(target.parent)


def _entries(keys: array[int]) -> array[int]:
    """The entries ``keys[n] << 32 | n``, sorted.

    The 64-bit integers are put together from the bytes of ``keys`` and of the numbers
    ``0, 1, ...``: the only integer objects made are the ones the sort needs.
    """
    count = len(keys)
    packed = bytearray(_ENTRY * count)
    key_bytes, n_bytes = keys.tobytes(), array("I", range(count)).tobytes()
    for i in range(4):
        packed[_KEY_AT + i :: _ENTRY] = key_bytes[i::4]
        packed[_N_AT + i :: _ENTRY] = n_bytes[i::4]
    return array("Q", sorted(array("Q", packed)))


def _record_ids(path: Path) -> tuple[list[bytes], bytes] | None:
    """The UTF-8 record id of every line, in order, and the line hash of the last line.

    ``None`` unless the file is complete lines with exactly one record id each.

    Read in bounded chunks, so indexing a 64 MiB segment does not hold it in memory.
    """
    ids: list[bytes] = []
    rest = last = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_READ_CHUNK)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if not cut:
                continue
            found = _ids_of(data[:cut])
            if found is None:
                return None
            ids += found
            last = data[data.rfind(b"\n", 0, cut - 1) + 1 : cut - 1]
    if rest or not ids:
        return None
    return ids, line_leaf(read_format(path.parent), last)


def _ids_of(lines: bytes) -> list[bytes] | None:
    ids: list[bytes] = _ID_FAST.findall(lines)
    if b"\\" in b"".join(ids):
        try:
            ids = [_unescape(raw) for raw in _ID_EXACT.findall(lines)]
        except ValueError:
            return None
    return ids if len(ids) == lines.count(b"\n") else None


class IdIndex:
    """An open index: :meth:`may_hold` from its header, :meth:`lookup` from one block.

    Open one with :meth:`open`, which returns ``None`` when the file is missing, is not an
    index of ``seg`` with ``count`` entries, or its header fails its CRC.
    """

    def __init__(
        self,
        fd: int,
        seg: Segment,
        count: int,
        low: bytes,
        high: bytes,
        last: bytes,
        fence: array[int],
        data_start: int,
    ) -> None:
        self._fd = fd
        self.segment = seg
        self.first = seg.first
        self.count = count
        self.low = low
        self.high = high
        self._last = last
        self._fence = fence
        self._data_start = data_start
        self._matched: bool | None = None

    @classmethod
    def open(cls, seg: Segment, count: int) -> IdIndex | None:
        """The index of ``seg``, which holds ``count`` records, if it is present and sound."""
        try:
            fd = os.open(index_path(seg), os.O_RDONLY)
        except OSError:
            return None
        try:
            index = cls._read(fd, seg, count)
        except (OSError, ValueError, struct.error):
            index = None
        if index is None:
            os.close(fd)
        return index

    @classmethod
    def _read(cls, fd: int, seg: Segment, count: int) -> IdIndex | None:
        head = os.pread(fd, _FIRST_READ, 0)
        fixed_end = len(_MAGIC) + _FIXED.size
        if not head.startswith(_MAGIC) or len(head) < fixed_end:
            return None
        fixed = _FIXED.unpack(head[len(_MAGIC) : fixed_end])
        first, entries, blocks, low_len, high_len, last = fixed
        if first != seg.first or entries != count or blocks != math.ceil(count / _BLOCK):
            return None
        fence_start = fixed_end + low_len + high_len
        header_len = fence_start + blocks * _ENTRY
        data_start = header_len + _CRC.size
        if os.fstat(fd).st_size != data_start + count * _ENTRY + blocks * _CRC.size:
            return None
        if len(head) < data_start:
            head = os.pread(fd, data_start, 0)
        if len(head) < data_start:
            return None
        (crc,) = _CRC.unpack(head[header_len:data_start])
        if crc != _crc32(head[:header_len]):
            return None
        fence = array("Q", head[fence_start:header_len])
        fence.byteswap()
        low = head[fixed_end : fixed_end + low_len]
        high = head[fixed_end + low_len : fence_start]
        return cls(fd, seg, count, low, high, last, fence, data_start)

    def may_hold(self, record_id: str) -> bool:
        """False if ``record_id`` lies outside the segment's id range (so it is not there).

        Trust it only for an index that :meth:`matches_segment`.
        """
        raw = record_id.encode("utf-8", "surrogatepass")
        return self.low <= raw <= self.high

    def matches_segment(self) -> bool:
        """Whether the segment still ends with the line this index was built from."""
        if self._matched is None:
            try:
                path = self.segment.path
                last = hash_of_last_line(path, read_format(path.parent))
            except OSError:
                last = ""
            self._matched = last == self._last.hex()
        return self._matched

    def lookup(self, record_id: str) -> list[int] | None:
        """The sequence numbers whose id has ``record_id``'s key, ascending.

        ``None`` if the index is damaged or was built from another segment: scan instead.
        """
        if not self.matches_segment():
            return None
        key = record_key(record_id)
        low, high = key << 32, (key << 32) | 0xFFFFFFFF
        block = bisect.bisect_left(self._fence, low)
        found: list[int] = []
        try:
            while block < len(self._fence):
                entries = self._block(block)
                if entries is None:
                    return None
                start = bisect.bisect_left(entries, low)
                stop = bisect.bisect_right(entries, high)
                found.extend(self.first + (e & 0xFFFFFFFF) for e in entries[start:stop])
                if stop < len(entries):
                    break
                block += 1
        except OSError:
            return None
        return found

    def _block(self, block: int) -> array[int] | None:
        n = min(_BLOCK, self.count - block * _BLOCK)
        offset = self._data_start + block * (_BLOCK * _ENTRY + _CRC.size)
        raw = os.pread(self._fd, n * _ENTRY + _CRC.size, offset)
        if len(raw) != n * _ENTRY + _CRC.size:
            return None
        body = raw[: n * _ENTRY]
        if _CRC.unpack(raw[n * _ENTRY :])[0] != _crc32(body):
            return None
        entries = array("Q", body)
        entries.byteswap()
        if entries[-1] != self._fence[block]:
            return None
        return entries

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Indexer:
    """Builds segment indexes on a background thread, so the writer never waits for them.

    A failure to build one is logged and otherwise ignored: lookups scan an unindexed segment.
    """

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def add(self, segments: Sequence[Segment]) -> None:
        """Index ``segments`` (sealed ones), in order, in the background, from their files."""
        self._start([(seg, None) for seg in segments])

    def add_written(self, seg: Segment, written: WrittenIds) -> None:
        """Index ``seg``, just sealed, from what its writer kept (else from its file)."""
        self._start([(seg, written)])

    def _start(self, jobs: list[tuple[Segment, WrittenIds | None]]) -> None:
        if not jobs:
            return
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(
            target=_build_all, args=(jobs,), name="kzai-audit-indexer", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Wait for the indexes being built."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()


def unindexed(segments: Sequence[Segment]) -> list[Segment]:
    """The sealed segments of a log's ``segments`` (in order) that lack a sound index."""
    out: list[Segment] = []
    for seg, nxt in itertools.pairwise(segments):
        index = IdIndex.open(seg, nxt.first - seg.first)
        if index is None:
            out.append(seg)
        else:
            if not index.matches_segment():
                out.append(seg)
            index.close()
    return out


def _build_all(jobs: list[tuple[Segment, WrittenIds | None]]) -> None:
    for seg, written in jobs:
        try:
            if written is not None:
                if build_index_from(seg, written):
                    continue
                _log.debug(
                    "audit segment %s is indexed from its file: its writer's ids do not cover it",
                    seg.path,
                )
            if not build_index(seg):
                _log.warning("audit segment %s was not indexed: it is not cleanly sealed", seg.path)
        except FileNotFoundError:
            continue  # pruned meanwhile
        except OSError as exc:
            _log.warning("audit segment %s was not indexed: %s", seg.path, exc)
            with contextlib.suppress(OSError):
                index_path(seg).with_suffix(INDEX_SUFFIX + ".tmp").unlink()


def _unescape(raw: bytes) -> bytes:
    if b"\\" not in raw:
        return raw
    value = orjson.loads(b'"' + raw + b'"')
    return str(value).encode("utf-8", "surrogatepass")
