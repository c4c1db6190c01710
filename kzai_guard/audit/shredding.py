"""Crypto-shredding: personal fields sealed under per-subject keys that can be erased.

The personal fields of a record (``subject``, ``reviewer``, ``detail``), and the values that
would link it to the person's other records (``review_id``, ``explanation_digest``,
``trace_id``: :data:`SEALED_FIELDS`), are not written in clear. They are encrypted together with
AES-256-GCM under a key that belongs to the record's subject (or, for records without a
subject, to its reviewer) and stored in the line's ``sealed`` member as ``{"ct": base64(nonce ||
ciphertext), "fields", "ref": <record reference>}``.

The owner's key is named in the key store by :func:`subject_ref` of the pseudonym. The line
names it by a reference of its own, :func:`record_ref`: an HMAC of the record id under a key
derived from the owner's key (:func:`ref_key`), different for every record. The store keeps an
index from record references to owners (:class:`RecordRefs`), written before the lines, and
deletes the owner's entries with the key. Once the key is erased, the references of the
person's records are values nobody can recompute or tie to each other, even with the pseudonym
key and the person's raw identifier. Lines written before this scheme name the owner's key
reference itself (``sk:...``, with ``key``: the number of a reserved key whose assignment was
not yet durable) and are read as before.

Erasing the subject's key (:meth:`SubjectKeys.erase`) makes those fields unreadable for good,
while the line, its hash, the chain and every checkpoint stay exactly as they were. Readers
then get :data:`ERASED` in place of each sealed field.

Two key stores ship here: :class:`MemorySubjectKeys` (tests) and :class:`SqliteSubjectKeys`
(a file, with SQLite's ``secure_delete`` so erased key bytes are overwritten). Any object with
``key_for`` and ``erase`` will do, e.g. one backed by the application's main store.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import operator
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kzai_guard._native import native_module
from kzai_guard.audit.subject_keys import KEY_SIZE, SqliteSubjectKeys

__all__ = [
    "AAD_PREFIX",
    "ERASED",
    "LINKING_FIELDS",
    "PERSONAL_FIELDS",
    "RECORD_REF_PREFIX",
    "SEALED",
    "SEALED_FIELDS",
    "BatchedSubjectKeys",
    "Encrypt",
    "MemorySubjectKeys",
    "RecordRefs",
    "ReservedSubjectKeys",
    "Sealer",
    "SqliteSubjectKeys",
    "SubjectKeys",
    "SubjectSeal",
    "record_ref",
    "ref_key",
    "seal",
    "subject_ref",
    "unseal",
]

PERSONAL_FIELDS: tuple[str, ...] = ("subject", "reviewer", "detail")
"""The record fields that name or describe a person; the first two decide the key's owner."""

LINKING_FIELDS: tuple[str, ...] = ("review_id", "explanation_digest", "trace_id")
"""Record fields that other records (or other systems) share: in clear, they would tie an
erased person's records together."""

SEALED_FIELDS: tuple[str, ...] = PERSONAL_FIELDS + LINKING_FIELDS
"""The record fields sealed in a record that has an owner, in the order they are sealed."""

RECORD_REF_PREFIX = "rr:"
"""What a per-record reference (:func:`record_ref`) starts with; an owner's is ``sk:``."""

ERASED = "[erased]"
"""What a reader gets for a personal field whose subject key was erased."""

SEALED = "[sealed]"
"""What a reader gets for a personal field when it was given no key store."""

_NONCE_SIZE = 12
AAD_PREFIX = b"kzai-guard sealed v1\n"
"""What the associated data of every sealed record starts with (then id, newline, ref)."""
_RECORD_REF_BYTES = RECORD_REF_PREFIX.encode()
_hex = binascii.hexlify
_nonce_bytes = operator.methodcaller("to_bytes", _NONCE_SIZE, "big")
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_encrypt_of = operator.attrgetter("encrypt")
_native_lines = native_module("kzai_guard.audit._lines")
_native_refs: Callable[..., tuple[list[bytes], list[tuple[str, str]]]] | None = (
    None if _native_lines is None else _native_lines.record_refs
)
_FIELD_LISTS: dict[tuple[str, ...], str] = {
    names: ",".join(names)
    for names in (
        ("subject",),
        ("subject", "reviewer"),
        ("subject", "detail"),
        ("subject", "reviewer", "detail"),
        ("reviewer",),
        ("reviewer", "detail"),
    )
}


def subject_ref(pseudonym: str) -> str:
    """The key reference of a subject pseudonym: what the log stores in clear and keys by.

    >>> subject_ref("p:abc")[:3]
    'sk:'
    """
    digest = hashlib.sha256(b"kzai-guard subject key\n" + pseudonym.encode()).digest()
    return "sk:" + digest[:16].hex()


def ref_key(key: bytes) -> bytes:
    """The key of the record references sealed under ``key``: derived from it, so that it is
    erased with it, and never used to encrypt."""
    return hmac.digest(key, b"kzai-guard record ref\n", "sha256")


def record_ref(ref_key: bytes, record_id: str) -> str:
    """The reference a line gives its record's key: one of its own, no other record's.

    >>> record_ref(bytes(32), "dec-1")[:3]
    'rr:'
    """
    digest = hmac.digest(ref_key, record_id.encode(), "sha256")
    return RECORD_REF_PREFIX + digest[:16].hex()


@runtime_checkable
class SubjectKeys(Protocol):
    """Where per-subject encryption keys live."""

    def key_for(self, ref: str, create: bool = True) -> bytes | None:
        """The 32-byte key for ``ref``; made if absent and ``create``, else ``None``."""
        ...

    def erase(self, ref: str) -> None:
        """Destroy the key for ``ref`` (idempotent)."""
        ...


@runtime_checkable
class RecordRefs(Protocol):
    """A key store that indexes record references (:func:`record_ref`) by their owners.

    Without it, a store's records name their owner's key reference (:func:`subject_ref`),
    the same for all of them, and stay linkable after erasure."""

    def remember(self, refs: Iterable[tuple[str, str]]) -> None:
        """Index ``(record reference, owner's key reference)`` pairs; in place once the next
        :meth:`BatchedSubjectKeys.commit` returns (at once in a store without ``commit``).
        :meth:`SubjectKeys.erase` of the owner deletes them."""
        ...

    def record_key(self, ref: str) -> bytes | None:
        """The key of the record named ``ref``: its owner's, ``None`` if erased or unknown."""
        ...


@runtime_checkable
class BatchedSubjectKeys(SubjectKeys, Protocol):
    """A key store that buffers new keys until :meth:`commit` (one transaction per batch)."""

    def commit(self) -> bool:
        """Make the keys made since the last commit safe to seal records under: durable, or
        (a store with a reserve) recoverable from the key numbers the records carry.

        Returns True if some of them lost to keys another writer committed first for the same
        subjects: the records sealed since the last commit must then be sealed again (the
        store now gives the winning keys). Writers may seal and commit concurrently."""
        ...

    def prefetch(self, refs: Iterable[str]) -> None:
        """Look up the keys of ``refs`` at once, so that :meth:`key_for` needs no query."""
        ...


@runtime_checkable
class ReservedSubjectKeys(BatchedSubjectKeys, Protocol):
    """A batched store that makes keys durable ahead of need (see :class:`SqliteSubjectKeys`)."""

    def key_number(self, ref: str) -> int | None:
        """The number of the reserved key of ``ref`` while its assignment is not durable."""
        ...

    def key_numbers(self, refs: Sequence[str]) -> list[int | None]:
        """:meth:`key_number` of each of ``refs``, in order."""
        ...

    def keys_for(self, refs: Sequence[str]) -> list[bytes]:
        """The key of each of ``refs`` (made where absent, as ``key_for``), in order."""
        ...

    def needs_reserve(self) -> bool:
        """Whether the reserve of keys is running low."""
        ...

    def reserved_key(self, number: int) -> bytes | None:
        """The reserved key numbered ``number``, while it is still reserved."""
        ...

    def reserve(self, count: int = ...) -> None:
        """Make more keys ahead of need, durably."""
        ...

    def sync(self) -> None:
        """Make every committed assignment durable."""
        ...

    def recover(self, assignments: Iterable[tuple[str, int]]) -> None:
        """Redo the assignments ``(ref, number)`` a crash took away."""
        ...


class MemorySubjectKeys:
    """Keys in a dict, record references in another; for tests and short-lived processes."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def key_for(self, ref: str, create: bool = True) -> bytes | None:
        """The key for ``ref``, made on first use when ``create``."""
        with self._lock:
            key = self._keys.get(ref)
            if key is None and create:
                key = self._keys[ref] = os.urandom(KEY_SIZE)
            return key

    def remember(self, refs: Iterable[tuple[str, str]]) -> None:
        """Index record references by owner (see :class:`RecordRefs`)."""
        with self._lock:
            self._owners.update(refs)

    def record_key(self, ref: str) -> bytes | None:
        """The key of the record named ``ref``, through its owner."""
        with self._lock:
            owner = self._owners.get(ref)
            return None if owner is None else self._keys.get(owner)

    def erase(self, ref: str) -> None:
        """Forget the key for ``ref`` and the references of its records."""
        with self._lock:
            self._keys.pop(ref, None)
            for record in [r for r, owner in self._owners.items() if owner == ref]:
                del self._owners[record]


def _aad(record_id: str, ref: str) -> bytes:
    return AAD_PREFIX + record_id.encode() + b"\n" + ref.encode()


def seal(
    fields: dict[str, Any], record_id: str, ref: str, key: bytes, nonce: bytes | None = None
) -> dict[str, str]:
    """Encrypt ``fields`` (the personal ones) into the line's ``sealed`` member."""
    if nonce is None:
        nonce = os.urandom(_NONCE_SIZE)
    ct = AESGCM(key).encrypt(nonce, orjson.dumps(fields), _aad(record_id, ref))
    return {"ct": base64.b64encode(nonce + ct).decode(), "fields": ",".join(fields), "ref": ref}


Encrypt = Callable[[bytes, bytes, bytes | None], bytes]
"""AES-GCM encryption under one key: ``encrypt(nonce, plaintext, associated_data)``."""

SubjectSeal = tuple[bytes, bytes, int | None, Encrypt | None, bytes | None]
"""How one batch seals for one owner: (key, owner's key reference, key number, AES-GCM
encrypt, record reference key).

The record reference key (:func:`ref_key`) is set when the store indexes record references
(:class:`RecordRefs`); each line then names its key by :func:`record_ref`, else by the owner's
key reference. The key number is set while the store's assignment of a reserved key is not
durable, for a store without that index (lines then carry it). The first three are what the C
line encoder reads; the Python one also uses the cipher, which :meth:`Sealer.for_batch` leaves
out (``None``) when asked to."""


class Sealer:
    """Seals the personal fields of records for one writer, caching what it can.

    Key references, record reference keys and cipher objects are cached, never the decision
    to use a key: the key is asked of the store once per owner per batch (:meth:`for_batch`),
    and the writer never puts an erasure inside a batch, so a key erased through the log is
    never used for a record queued after the erasure. Nonces are a random 8-byte prefix per
    writer and a 4-byte counter (a fresh prefix on wrap-around), so they never repeat under
    one key.
    """

    def __init__(self, keys: SubjectKeys, cache_size: int = 65_536) -> None:
        self.keys = keys
        self._batched = keys if isinstance(keys, BatchedSubjectKeys) else None
        self._indexed = keys if isinstance(keys, RecordRefs) else None
        # a store that indexes record references commits assignments before the lines:
        # their records need not carry reserved keys' numbers
        self._reserved = (
            keys if isinstance(keys, ReservedSubjectKeys) and self._indexed is None else None
        )
        self._refs: dict[str, tuple[str, bytes]] = {}
        self._ciphers: dict[bytes, AESGCM] = {}
        self._ref_keys: dict[bytes, bytes] = {}
        self._ref_macs: dict[bytes, tuple[Any, Any]] = {}
        self._cache_size = cache_size
        self._prefix = os.urandom(8)
        self._counter = 0

    def ref(self, owner: str) -> str:
        """:func:`subject_ref` of ``owner``, cached."""
        return self._ref(owner)[0]

    def _ref(self, owner: str) -> tuple[str, bytes]:
        """The reference, and as bytes."""
        entry = self._refs.get(owner)
        if entry is None:
            if len(self._refs) >= self._cache_size:
                self._refs.clear()
            ref = subject_ref(owner)
            entry = self._refs[owner] = (ref, ref.encode())
        return entry

    def for_batch(self, owners: Iterable[str], ciphers: bool = True) -> dict[str, SubjectSeal]:
        """What sealing needs for each distinct owner of one batch, keys looked up once each.

        A batched store is asked for all the keys at once (:meth:`BatchedSubjectKeys.prefetch`);
        keys it makes stay pending until the writer commits them, before the batch is written.
        ``ciphers=False`` leaves the cipher objects out (the C encoder needs only the keys).
        """
        distinct = list(dict.fromkeys(owners))
        cached = list(map(self._refs.get, distinct))
        refs = (
            cast(list[tuple[str, bytes]], cached)
            if None not in cached
            else [self._ref(owner) for owner in distinct]
        )
        names = list(map(_first, refs))
        if self._batched is not None:
            self._batched.prefetch(names)
        reserved = self._reserved
        numbers: list[int | None]
        if reserved is not None:
            keys: list[bytes | None] = list(reserved.keys_for(names))
            numbers = reserved.key_numbers(names)
        else:
            key_for = self.keys.key_for
            keys = [key_for(name, True) for name in names]
            numbers = [None] * len(names)
        if None in keys:
            raise _missing_key(names[keys.index(None)])
        present = cast(list[bytes], keys)
        encrypts: Iterable[Encrypt | None]
        if ciphers:
            found = list(map(self._ciphers.get, present))
            encrypts = map(
                _encrypt_of,
                found if None not in found else [self._cipher(key) for key in present],
            )
        else:
            encrypts = [None] * len(names)
        ref_keys: list[bytes | None] = (
            [None] * len(names) if self._indexed is None else list(map(self._ref_key, present))
        )
        seals = zip(present, map(_second, refs), numbers, encrypts, ref_keys, strict=True)
        return dict(zip(distinct, cast(Iterable[SubjectSeal], seals), strict=True))

    def record_refs(
        self, records: Iterable[tuple[str | None, str]], seals: dict[str, SubjectSeal]
    ) -> list[bytes]:
        """The reference each record's line names its key by, for ``(owner, record id)``
        pairs (``b""`` where the owner is ``None``), with ``seals`` from :meth:`for_batch`.

        Where the store indexes record references, each record gets its own
        (:func:`record_ref`), handed to the store to be committed with the batch's keys.
        The C line encoder computes them where it is in use (the same bytes)."""
        pairs = list(records)
        found = None
        if _native_refs is not None:
            with contextlib.suppress(TypeError):  # what only the Python twin handles
                found = _native_refs(pairs, seals)
        out, index = found if found is not None else self._python_record_refs(pairs, seals)
        if index and self._indexed is not None:
            self._indexed.remember(index)
        return out

    def _python_record_refs(
        self, records: Iterable[tuple[str | None, str]], seals: dict[str, SubjectSeal]
    ) -> tuple[list[bytes], list[tuple[str, str]]]:
        """What the C encoder's ``record_refs`` does, in Python: the references, and the
        ``(record reference, owner's key reference)`` pairs of those made per record."""
        out: list[bytes] = []
        append = out.append
        index: list[tuple[str, str]] = []
        macs = self._ref_macs
        for owner, record_id in records:
            if owner is None:
                append(b"")
                continue
            seal = seals[owner]
            key = seal[4]
            if key is None:
                append(seal[1])
                continue
            # HMAC-SHA256 (record_ref) from the key's two padded states, hashed once per key:
            # a third of the cost of hmac.digest, which sets up OpenSSL's HMAC every call
            inner, outer = macs.get(key) or self._ref_mac(key)
            h = inner.copy()
            h.update(record_id.encode())
            o = outer.copy()
            o.update(h.digest())
            ref = _RECORD_REF_BYTES + _hex(o.digest()[:16])
            index.append((ref.decode(), seal[1].decode()))
            append(ref)
        return out, index

    def _ref_mac(self, ref_key: bytes) -> tuple[Any, Any]:
        """SHA-256 after the inner and after the outer padded HMAC key (RFC 2104)."""
        if len(self._ref_macs) >= self._cache_size:
            self._ref_macs.clear()
        padded = ref_key.ljust(64, b"\0")
        mac = (
            hashlib.sha256(bytes(b ^ 0x36 for b in padded)),
            hashlib.sha256(bytes(b ^ 0x5C for b in padded)),
        )
        self._ref_macs[ref_key] = mac
        return mac

    def _ref_key(self, key: bytes) -> bytes:
        derived = self._ref_keys.get(key)
        if derived is None:
            if len(self._ref_keys) >= self._cache_size:
                self._ref_keys.clear()
            derived = self._ref_keys[key] = ref_key(key)
        return derived

    def _cipher(self, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(key)
        if cipher is None:
            if len(self._ciphers) >= self._cache_size:
                self._ciphers.clear()
            cipher = self._ciphers[key] = AESGCM(key)
        return cipher

    def nonces(self, count: int) -> list[bytes]:
        """``count`` fresh 12-byte nonces, each used at most once by this writer."""
        out: list[bytes] = []
        while count > 0:
            if self._counter >= 0xFFFFFFFF:
                self._prefix = os.urandom(8)
                self._counter = 0
            first = self._counter + 1
            last = min(first + count, 0x100000000)
            base = int.from_bytes(self._prefix, "big") << 32
            out += map(_nonce_bytes, range(base + first, base + last))
            count -= last - first
            self._counter = last - 1
        return out

    def forget(self) -> None:
        """Drop the cached cipher objects and reference keys (after an erasure, so that no
        erased key, nor anything derived from it, stays in memory)."""
        self._ciphers.clear()
        self._ref_keys.clear()
        self._ref_macs.clear()

    def seal(self, record_id: str, owner: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The ``sealed`` member for ``fields``, under the key of ``owner``."""
        seals = self.for_batch([owner])
        _, _, number, encrypt, _ = seals[owner]
        ref = self.record_refs([(owner, record_id)], seals)[0]
        nonce = self.nonces(1)[0]
        ct = cast(Encrypt, encrypt)(
            nonce, orjson.dumps(fields), AAD_PREFIX + record_id.encode() + b"\n" + ref
        )
        sealed: dict[str, Any] = {
            "ct": binascii.b2a_base64(nonce + ct, newline=False).decode(),
            "fields": _FIELD_LISTS.get(tuple(fields)) or ",".join(fields),
            "ref": ref.decode(),
        }
        if number is not None:
            sealed["key"] = number
        return sealed


def _missing_key(ref: str) -> KeyError:
    return KeyError(f"the subject key store gave no key for {ref}")


def unseal(sealed: dict[str, Any], record_id: str, key: bytes | None) -> dict[str, Any] | None:
    """The personal fields, or ``None`` if the key is gone (erased) or does not fit."""
    if key is None:
        return None
    raw = base64.b64decode(sealed["ct"])
    try:
        plain = AESGCM(key).decrypt(
            raw[:_NONCE_SIZE], raw[_NONCE_SIZE:], _aad(record_id, sealed["ref"])
        )
    except InvalidTag:
        return None
    value = orjson.loads(plain)
    if not isinstance(value, dict):
        return None
    return value
