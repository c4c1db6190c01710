"""Encoding records into chained log lines, a batch at a time.

A line is the RFC 8785 canonical JSON of ``{"prev", "rec", "sealed"?, "seq"}`` (see
:mod:`kzai_guard.audit.segments`). Only ``rec`` and the sealed plaintext need a JSON encoder:
every other member is hex, base64, a decimal integer, a key reference or a fixed field list,
none of which JSON escapes, so the line is assembled by formatting bytes around one
``orjson`` call. The record's members are taken in sorted order, so ``orjson`` writes them
sorted without being asked to sort. The test suite checks every line against the published
``rfc8785`` encoder.

Per batch, the subject keys are looked up once per owner (:meth:`Sealer.for_batch`) and the
nonces drawn at once; per record there is one ``orjson`` call for ``rec``, one for the
plaintext, one AES-GCM encryption and one SHA-256.
"""

from __future__ import annotations

import binascii
import dataclasses
import functools
import hashlib
import operator
from collections.abc import Sequence
from typing import Any, cast

import orjson

from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.shredding import AAD_PREFIX, PERSONAL_FIELDS, Sealer

__all__ = ["LineEncoder"]

_FIELDS = tuple(AuditRecord.__dataclass_fields__)
# ASCII names: sorted by code point is sorted by UTF-16 code unit, as RFC 8785 wants
_ALL = tuple(sorted(_FIELDS))
_OPEN = tuple(sorted(n for n in _FIELDS if n not in PERSONAL_FIELDS))
_get_all = operator.attrgetter(*_ALL)
_get_open = operator.attrgetter(*_OPEN)
_get_personal = operator.attrgetter(*PERSONAL_FIELDS)
_subject_of = operator.attrgetter("subject")
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
    """

    def __init__(self, sealer: Sealer | None) -> None:
        self._sealer = sealer

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
        leaf = _LEAF.copy
        start, end = 0, len(records)
        while start < end and size < room:
            # a chunk at a time, so that a nearly full segment wastes little encoding
            chunk = records[start : start + _CHUNK]
            start += len(chunk)
            for body in self._bodies(chunk):
                line = _LINE % (prev, body, seq)
                h = leaf()
                h.update(line)
                digest = h.digest()
                lines.append(line)
                hashes.append(digest)
                prev = _hex(digest)
                seq += 1
                size += len(line) + 1
                if size >= room:
                    break
        return lines, hashes, size

    def _bodies(self, records: Sequence[AuditRecord]) -> list[bytes]:
        """Each record's line between the ``prev`` hex digits and the ``seq`` digits."""
        sealer = self._sealer
        if sealer is None:
            return [_CLEAR_BODY % self._clear_rec(record) for record in records]
        try:
            return self._sealed_bodies(records, sealer)
        except UnicodeEncodeError:
            # a lone surrogate in an id or a key owner, which the key reference and the
            # associated data need as UTF-8: written as escapes, as in any other field
            return self._sealed_bodies(list(map(_text_safe_record, records)), sealer)

    def _sealed_bodies(self, records: Sequence[AuditRecord], sealer: Sealer) -> list[bytes]:
        owners = dict.fromkeys(map(_subject_of, records))
        if None in owners:
            del owners[None]
            owners.update(dict.fromkeys(r.reviewer for r in records if r.subject is None))
            owners.pop(None, None)
        seals = sealer.for_batch(cast(dict[str, None], owners))
        nonces = sealer.nonces(len(records)) if seals else []
        bodies: list[bytes] = []
        append = bodies.append
        for record, nonce in zip(records, nonces or [b""] * len(records), strict=True):
            subject, reviewer, detail = _get_personal(record)
            owner = subject if subject is not None else reviewer
            if owner is None:
                append(_CLEAR_BODY % self._clear_rec(record))
                continue
            kept = {k: v for k, v in zip(_OPEN, _get_open(record)) if v is not None}  # noqa: B905
            try:
                rec = _dumps(kept)
                if reviewer is None:
                    if detail is None:
                        plain, fields = _dumps({"subject": subject}), b"subject"
                    else:
                        plain = _dumps({"subject": subject, "detail": detail})
                        fields = b"subject,detail"
                else:
                    plain, fields = _personal(subject, reviewer, detail)
            except orjson.JSONEncodeError:
                rec, plain, fields = _escaped(kept, subject, reviewer, detail)
            encrypt, ref, aad_tail, number = seals[owner]
            ct = _b64(nonce + encrypt(nonce, plain, AAD_PREFIX + record.id.encode() + aad_tail))
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


def _personal(subject: str | None, reviewer: str | None, detail: str | None) -> tuple[bytes, bytes]:
    """The sealed plaintext and the ``fields`` list of the personal fields present."""
    fields = {
        k: v
        for k, v in zip(PERSONAL_FIELDS, (subject, reviewer, detail), strict=True)
        if v is not None
    }
    return _dumps(fields), ",".join(fields).encode()


def _escaped(
    kept: dict[str, Any], subject: str | None, reviewer: str | None, detail: str | None
) -> tuple[bytes, bytes, bytes]:
    """``rec``, plaintext and fields of a record with text JSON cannot hold (lone surrogates)."""
    personal = _text_safe({"subject": subject, "reviewer": reviewer, "detail": detail})
    plain, fields = _personal(personal["subject"], personal["reviewer"], personal["detail"])
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
