"""Encoding records into chained log lines, a batch at a time.

A line is the RFC 8785 canonical JSON of ``{"prev", "rec", "sealed"?, "seq"}`` (see
:mod:`kzai_guard.audit.segments`). Only ``rec`` and the sealed plaintext need a JSON encoder:
every other member is hex, base64, a decimal integer, a key reference or a fixed field list,
none of which JSON escapes, so the line is assembled by formatting bytes around one
``orjson`` call. The record's members are taken in sorted order, so ``orjson`` writes them
sorted without being asked to sort. The test suite checks every line against the published
``rfc8785`` encoder.

Per batch, the subject keys are looked up once per owner (:meth:`Sealer.for_batch`) and the
nonces drawn at once; per record there is one HMAC for its key reference
(:meth:`Sealer.record_refs`), one ``orjson`` call for ``rec``, one for the plaintext, one
AES-GCM encryption and one SHA-256.

Where it was built, the C encoder (``kzai_guard/audit/_lines.c``, OpenSSL's libcrypto) does the
per-record work of a chunk in one call, and gives the same bytes: the bodies of a batch, which
the writer seals before it holds the log (:meth:`LineEncoder.bodies`, nothing hashed), and the
lines chained from them once the head is known (:func:`chain`). It handles str, int and
``None`` members in valid UTF-8; for anything else it refuses the chunk and this module encodes
it (:data:`NATIVE` says whether it is in use; :data:`PUREPYTHON_VARIABLE` turns it off).
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import hashlib
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import orjson

from kzai_guard._native import PUREPYTHON_VARIABLE, native_module
from kzai_guard.audit.leaf import COMMITMENTS, LINES, check_format
from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.shredding import (
    AAD_PREFIX,
    SEALED_FIELDS,
    Encrypt,
    Sealer,
    SubjectSeal,
)

__all__ = ["NATIVE", "PUREPYTHON_VARIABLE", "LineEncoder", "chain"]


_native_lines = native_module("kzai_guard.audit._lines")
_native_chain: Callable[..., tuple[list[bytes], list[bytes], int]] | None = (
    None if _native_lines is None else _native_lines.chain
)

NATIVE = _native_lines is not None
"""Whether the C line encoder is in use (built, and not turned off); without it, lines are
encoded here (the same bytes)."""

_FIELDS = tuple(AuditRecord.__dataclass_fields__)
# ASCII names: sorted by code point is sorted by UTF-16 code unit, as RFC 8785 wants
_ALL = tuple(sorted(_FIELDS))
_OPEN = tuple(sorted(n for n in _FIELDS if n not in SEALED_FIELDS))
_get_all = operator.attrgetter(*_ALL)
_get_open = operator.attrgetter(*_OPEN)
_get_sealed = operator.attrgetter(*SEALED_FIELDS)
_subject_of = operator.attrgetter("subject")
_id_of = operator.attrgetter("id")
_dumps = orjson.dumps
_b64 = functools.partial(binascii.b2a_base64, newline=False)
_hex = binascii.hexlify
_LEAF = hashlib.sha256(b"\x00")
_LINE = b'{"prev":"%s%s%d}'
_SEALED_BODY = b'","rec":%s,"sealed":{"ct":"%s","fields":"%s","ref":"%s"},"seq":'
_NUMBERED_BODY = b'","rec":%s,"sealed":{"ct":"%s","fields":"%s","key":%d,"ref":"%s"},"seq":'
_CLEAR_BODY = b'","rec":%s,"seq":'
_CHUNK = 256


class LineEncoder:
    """Turns records into canonical lines chained by their leaf hashes.

    With a :class:`~kzai_guard.audit.shredding.Sealer`, the personal fields of every record
    with a subject (or a reviewer) are sealed; without one they are written in clear.
    ``native`` picks the encoder: the C one (``True``; a ``RuntimeError`` where it is not in
    use), the Python one (``False``), or the C one where it is in use (``None``).
    ``leaf_format`` is the log's format (:mod:`kzai_guard.audit.leaf`), which decides the leaf
    hashes that chain the lines.
    """

    def __init__(
        self, sealer: Sealer | None, *, native: bool | None = None, leaf_format: int = LINES
    ) -> None:
        self._sealer = sealer
        self._format = check_format(leaf_format)
        if native and _native_lines is None:
            raise RuntimeError(
                "the C line encoder (kzai_guard.audit._lines) is not in use: it was not built, "
                f"or {PUREPYTHON_VARIABLE} is set"
            )
        use = NATIVE if native is None else native
        encoder = (
            _native_lines.Encoder(_ALL, _OPEN, AAD_PREFIX, SEALED_FIELDS, leaf_format=self._format)
            if use and _native_lines is not None
            else None
        )
        self._native: Callable[..., tuple[list[bytes], list[bytes], int]] | None = (
            None if encoder is None else encoder.encode
        )
        self._native_bodies: Callable[..., list[bytes]] | None = (
            None if encoder is None else encoder.bodies
        )

    def encode(
        self, records: Sequence[AuditRecord], seq: int, prev: bytes, room: int
    ) -> tuple[list[bytes], list[bytes], int]:
        """Encode a prefix of ``records`` as the lines for ``seq``, ``seq + 1``, ...

        ``prev`` is the hex line hash before the first one. Stops after the line that brings
        the total (newlines included) to ``room`` bytes or more. Returns the lines, their leaf
        hashes and their total size.
        """
        lines: list[bytes] = []
        hashes: list[bytes] = []
        size = 0
        start, end = 0, len(records)
        while start < end and size < room:
            # a chunk at a time, so that a nearly full segment wastes little encoding
            chunk = records[start : start + _CHUNK]
            start += len(chunk)
            try:
                done = self._chunk(chunk, seq, prev, room - size)
            except UnicodeEncodeError:
                # a lone surrogate in an id or a key owner, which the key reference and the
                # associated data need as UTF-8: written as escapes, as in any other field
                done = self._chunk(list(map(_text_safe_record, chunk)), seq, prev, room - size)
            chunk_lines, chunk_hashes, chunk_size = done
            lines += chunk_lines
            hashes += chunk_hashes
            size += chunk_size
            seq += len(chunk_hashes)
            prev = _hex(chunk_hashes[-1])
        return lines, hashes, size

    def bodies(self, records: Sequence[AuditRecord]) -> list[bytes]:
        """Each record's line between its ``prev`` hex digits and its ``seq`` digits: sealed,
        and the same whatever place in the log the line gets.

        A writer seals its batch with this before it holds the log, then :func:`chain` makes
        the lines once the head is known.
        """
        bodies: list[bytes] = []
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            try:
                bodies += self._chunk_bodies(chunk)
            except UnicodeEncodeError:
                # as in encode(): a lone surrogate in an id or a key owner
                bodies += self._chunk_bodies(list(map(_text_safe_record, chunk)))
        return bodies

    def _chunk_bodies(self, records: Sequence[AuditRecord]) -> list[bytes]:
        """:meth:`bodies` of one chunk, by the C encoder where it can, else in Python."""
        if self._native_bodies is not None:
            seals, nonces, refs = self._seals(records, ciphers=False)
            try:
                return self._native_bodies(records, seals, nonces, refs)
            except (TypeError, ValueError, OverflowError):
                pass  # as in _chunk: fresh seals, nonces and references for the Python encoder
        seals, nonces, refs = self._seals(records)
        return self._bodies(records, seals, nonces, refs)

    def _chunk(
        self, records: Sequence[AuditRecord], seq: int, prev: bytes, room: int
    ) -> tuple[list[bytes], list[bytes], int]:
        if self._native is not None:
            seals, nonces, refs = self._seals(records, ciphers=False)
            try:
                return self._native(records, seq, prev, room, seals, nonces, refs)
            except (TypeError, ValueError, OverflowError):
                # what only this module handles (lone surrogates, other member types);
                # nothing the C encoder sealed is kept, and fresh nonces are drawn
                pass
        seals, nonces, refs = self._seals(records)
        return self._python_chunk(records, seq, prev, room, seals, nonces, refs)

    def _seals(
        self, records: Sequence[AuditRecord], ciphers: bool = True
    ) -> tuple[dict[str, SubjectSeal] | None, list[bytes], list[bytes]]:
        """The seal of every owner in ``records`` (``None`` in clear), a nonce per record and
        the reference each record's line names its key by."""
        sealer = self._sealer
        if sealer is None:
            return None, [], []
        owners, pairs = _owners(records)
        seals = sealer.for_batch(owners, ciphers)
        if not seals:
            return seals, [], []
        refs = sealer.record_refs(pairs, seals)
        return seals, sealer.nonces(len(records)), refs

    def _python_chunk(
        self,
        records: Sequence[AuditRecord],
        seq: int,
        prev: bytes,
        room: int,
        seals: dict[str, SubjectSeal] | None,
        nonces: list[bytes],
        refs: list[bytes],
    ) -> tuple[list[bytes], list[bytes], int]:
        """What the C encoder's ``encode`` does, in Python."""
        bodies = self._bodies(records, seals, nonces, refs)
        return _python_chain(bodies, seq, prev, room, self._format)

    def _bodies(
        self,
        records: Sequence[AuditRecord],
        seals: dict[str, SubjectSeal] | None,
        nonces: list[bytes],
        refs: list[bytes],
    ) -> list[bytes]:
        """Each record's line between the ``prev`` hex digits and the ``seq`` digits."""
        if seals is None:
            return [_CLEAR_BODY % self._clear_rec(record) for record in records]
        return self._sealed_bodies(records, seals, nonces, refs)

    def _sealed_bodies(
        self,
        records: Sequence[AuditRecord],
        seals: dict[str, SubjectSeal],
        nonces: list[bytes],
        refs: list[bytes],
    ) -> list[bytes]:
        bodies: list[bytes] = []
        append = bodies.append
        blank = [b""] * len(records)
        for record, nonce, ref in zip(records, nonces or blank, refs or blank, strict=True):
            values = _get_sealed(record)
            subject, reviewer = values[0], values[1]
            owner = subject if subject is not None else reviewer
            if owner is None:
                append(_CLEAR_BODY % self._clear_rec(record))
                continue
            kept = {k: v for k, v in zip(_OPEN, _get_open(record)) if v is not None}  # noqa: B905
            try:
                rec = _dumps(kept)
                plain, fields = _personal(values)
            except orjson.JSONEncodeError:
                rec, plain, fields = _escaped(kept, values)
            _, _, number, encrypt, _ = seals[owner]
            aad = AAD_PREFIX + record.id.encode() + b"\n" + ref
            ct = _b64(nonce + cast(Encrypt, encrypt)(nonce, plain, aad))
            if number is None:
                append(_SEALED_BODY % (rec, ct, fields, ref))
            else:
                append(_NUMBERED_BODY % (rec, ct, fields, number, ref))
        return bodies

    def _clear_rec(self, record: AuditRecord) -> bytes:
        values = _get_all(record)
        rec = {k: v for k, v in zip(_ALL, values, strict=True) if v is not None}
        try:
            return _dumps(rec)
        except orjson.JSONEncodeError:
            return _dumps(_text_safe(rec))


def chain(
    bodies: Sequence[bytes], seq: int, prev: bytes, room: int, leaf_format: int = LINES
) -> tuple[list[bytes], list[bytes], int]:
    """The lines of a prefix of ``bodies`` (from :meth:`LineEncoder.bodies`) for ``seq``,
    ``seq + 1``, ..., chained from ``prev`` (hex) by their leaf hashes in ``leaf_format``, as
    :meth:`LineEncoder.encode` returns them: it stops after the line that brings the total
    size (newlines included) to ``room``.

    The C encoder's ``chain`` does it where it is in use (:data:`NATIVE`), else its Python
    twin; both give the same bytes.
    """
    if _native_chain is not None:
        try:
            return _native_chain(bodies, seq, prev, room, leaf_format)
        except OverflowError:
            pass  # a sequence number past 64 bits, which only the Python twin writes
    return _python_chain(bodies, seq, prev, room, leaf_format)


def _python_chain(
    bodies: Sequence[bytes], seq: int, prev: bytes, room: int, leaf_format: int = LINES
) -> tuple[list[bytes], list[bytes], int]:
    """What the C encoder's ``chain`` does, in Python."""
    lines: list[bytes] = []
    hashes: list[bytes] = []
    size = 0
    leaf = _LEAF.copy
    commit = hashlib.sha256 if leaf_format == COMMITMENTS else None
    append_line, append_hash = lines.append, hashes.append
    for body in bodies:
        line = _LINE % (prev, body, seq)
        h = leaf()
        # the same leaf as kzai_guard.audit.leaf.line_leaf, with the 0x00 prefix hashed once
        h.update(line if commit is None else commit(line).digest())
        digest = h.digest()
        append_line(line)
        append_hash(digest)
        prev = _hex(digest)
        seq += 1
        size += len(line) + 1
        if size >= room:
            break
    return lines, hashes, size


def _owners(
    records: Sequence[AuditRecord],
) -> tuple[dict[str, None], Iterable[tuple[str | None, str]]]:
    """The owners of the records' keys, in order (the subject, else the reviewer), and each
    record's owner and id."""
    subjects = list(map(_subject_of, records))
    owners = dict.fromkeys(subjects)
    if None not in owners:
        # every record has a subject, the usual case: paired without a Python call per record
        return cast(dict[str, None], owners), zip(subjects, map(_id_of, records), strict=True)
    del owners[None]
    owners.update(dict.fromkeys(r.reviewer for r in records if r.subject is None))
    owners.pop(None, None)
    return cast(dict[str, None], owners), map(_owner_and_id, records)


def _owner_and_id(record: AuditRecord) -> tuple[str | None, str]:
    """Whose key seals ``record`` (the subject, else the reviewer), and its id."""
    subject = record.subject
    return (subject if subject is not None else record.reviewer), record.id


def _personal(values: Sequence[Any]) -> tuple[bytes, bytes]:
    """The sealed plaintext and the ``fields`` list of the sealed fields present."""
    fields = {k: v for k, v in zip(SEALED_FIELDS, values, strict=True) if v is not None}
    return _dumps(fields), ",".join(fields).encode()


def _escaped(kept: dict[str, Any], values: Sequence[Any]) -> tuple[bytes, bytes, bytes]:
    """``rec``, plaintext and fields of a record with text JSON cannot hold (lone surrogates)."""
    sealed = _text_safe(dict(zip(SEALED_FIELDS, values, strict=True)))
    plain, fields = _personal(list(sealed.values()))
    return _dumps(_text_safe(kept)), plain, fields


def _text_safe_record(record: AuditRecord) -> AuditRecord:
    """``record`` with every string field made encodable (itself if all of them are)."""
    values = dict(zip(_ALL, _get_all(record), strict=True))
    changed = {k: v for k, v in _text_safe(values).items() if v != values[k]}
    return dataclasses.replace(record, **changed) if changed else record


def _text_safe(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every string made encodable (lone surrogates written as escapes)."""
    return {
        k: v.encode("utf-8", "backslashreplace").decode() if isinstance(v, str) else v
        for k, v in values.items()
    }
