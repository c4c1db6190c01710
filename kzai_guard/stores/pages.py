"""Explanation pages: the explanations of many decisions in one row of the store.

Every allowed significant decision leaves an explanation, so storing them is the store's
busiest write. One row per explanation costs a B-tree insert of the row and one of its key per
decision; a page holds every explanation of one batch whose decisions began in the same
:data:`BUCKET_MS` milliseconds, so a batch costs about one row per bucket it touches. A
decision id (a UUIDv7) carries the millisecond it was made in, which names its bucket: a lookup
reads the few pages of that bucket and scans them for the id.

A page is ``len(index)`` (an unsigned 32-bit big-endian integer), then ``index``, the JSON
array of ``[decision_id, subject_ref, policy, created_at_us, digest, len(body)]`` for each
entry, then the entries' bodies (the explanations' JSON byte for byte), one after the other in
the same order. Ids that are not UUIDv7 (only ever given to the store directly) fall in one of
:data:`OTHER_BUCKETS` buckets below zero, chosen by their CRC-32.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

import orjson

__all__ = [
    "BUCKET_MS",
    "OTHER_BUCKETS",
    "Entry",
    "bucket_of",
    "encode_page",
    "find_entry",
    "group_by_bucket",
    "without_subject",
]

BUCKET_MS = 16  # at least 16, so that the ids of one bucket share their first 12 characters
"""How many milliseconds of decision ids share a bucket (a power of two)."""
OTHER_BUCKETS = 4096
"""How many buckets ids that are not UUIDv7 are spread over."""

_SHIFT = BUCKET_MS.bit_length() - 1
_LENGTH = struct.Struct(">I")
_HEX = frozenset("0123456789abcdef")


class _HasDecisionId(Protocol):
    @property
    def decision_id(self) -> str: ...


_T = TypeVar("_T", bound=_HasDecisionId)

Entry = tuple[str, str, str, int, str, bytes]
"""``(decision_id, subject_ref, policy, created_at_us, digest, body)``."""


def bucket_of(decision_id: str) -> int:
    """The bucket of ``decision_id``: its UUIDv7 millisecond over :data:`BUCKET_MS`."""
    if len(decision_id) == 36 and decision_id[14] == "7":
        bucket = _prefix_bucket(decision_id[:12])
        if bucket is not None:
            return bucket
    return -1 - zlib.crc32(decision_id.encode("utf-8", "surrogatepass")) % OTHER_BUCKETS


def group_by_bucket(items: Iterable[_T]) -> dict[int, list[_T]]:
    """``items`` (anything with a ``decision_id``) by :func:`bucket_of`, in order per bucket.

    UUIDv7 ids of one bucket share their first 12 characters, so the bucket is worked out once
    per prefix rather than once per item.
    """
    by_prefix: dict[str, list[_T]] = {}
    buckets: dict[int, list[_T]] = {}
    for item in items:
        decision_id = item.decision_id
        if len(decision_id) == 36 and decision_id[14] == "7":
            group = by_prefix.get(decision_id[:12])
            if group is None:
                group = by_prefix[decision_id[:12]] = []
            group.append(item)
        else:
            buckets.setdefault(bucket_of(decision_id), []).append(item)
    for prefix, group in by_prefix.items():
        bucket = _prefix_bucket(prefix)
        if bucket is None:
            for item in group:
                buckets.setdefault(bucket_of(item.decision_id), []).append(item)
        else:
            buckets.setdefault(bucket, []).extend(group)
    return buckets


def _prefix_bucket(prefix: str) -> int | None:
    """The bucket of a UUIDv7's first 12 characters (``hhhhhhhh-hhh``), or None."""
    if prefix[8] != "-" or not _HEX.issuperset(prefix[:8]) or not _HEX.issuperset(prefix[9:]):
        return None
    return int(prefix[:8] + prefix[9:12], 16) >> (_SHIFT - 4)


def encode_page(entries: Sequence[Entry]) -> bytes:
    """One page holding ``entries``, in order."""
    index = orjson.dumps([(e[0], e[1], e[2], e[3], e[4], len(e[5])) for e in entries])
    return b"".join((_LENGTH.pack(len(index)), index, *(e[5] for e in entries)))


def find_entry(pages: Iterable[bytes], decision_id: str) -> Entry | None:
    """The first entry for ``decision_id`` in ``pages`` (oldest page first), if any.

    Raises ``ValueError`` on a page that does not hold what its index says.
    """
    needle = orjson.dumps(decision_id)
    for page in pages:
        if needle not in page:
            continue
        for entry in _entries(page):
            if entry[0] == decision_id:
                return entry
    return None


def _entries(page: bytes) -> list[Entry]:
    """Every entry of ``page``, in order. Raises ``ValueError`` on a damaged page."""
    if len(page) < _LENGTH.size:
        raise ValueError("an explanation page ends inside its length")
    (index_len,) = _LENGTH.unpack_from(page)
    offset = _LENGTH.size + index_len
    try:
        index = orjson.loads(page[_LENGTH.size : offset])
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"an explanation page index is not JSON: {exc}") from None
    if not isinstance(index, list):
        raise ValueError("an explanation page index is not a JSON array")
    entries: list[Entry] = []
    try:
        for entry_id, subject_ref, policy, created_us, digest, body_len in index:
            end = offset + body_len
            if end > len(page):
                raise ValueError("an explanation page ends inside a body")
            entries.append((entry_id, subject_ref, policy, created_us, digest, page[offset:end]))
            offset = end
    except TypeError as exc:
        raise ValueError(f"an explanation page index is malformed: {exc}") from None
    return entries


def without_subject(page: bytes, subject_ref: str) -> tuple[bytes | None, int]:
    """``page`` without the entries of ``subject_ref``, and how many those were: the page
    itself when it has none, ``None`` when it has nothing else. Raises ``ValueError`` on a
    damaged page."""
    if subject_ref.encode() not in page:
        return page, 0
    entries = _entries(page)
    kept = [entry for entry in entries if entry[1] != subject_ref]
    removed = len(entries) - len(kept)
    if not removed:
        return page, 0
    return (encode_page(kept) if kept else None), removed
