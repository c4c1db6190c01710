"""Crypto-shredding: personal fields sealed under per-subject keys that can be erased.

The personal fields of a record (``subject``, ``reviewer``, ``detail``) are not written in
clear. They are encrypted together with AES-256-GCM under a key that belongs to the record's
subject (or, for records without a subject, to its reviewer) and stored in the line's
``sealed`` member as ``{"ct": base64(nonce || ciphertext), "fields", "key"?, "ref": <key
reference>}``. The key reference is :func:`subject_ref` of the pseudonym, so the pseudonym itself
never appears in clear; ``key`` is the number of a reserved key whose assignment is not yet
durable (:class:`SqliteSubjectKeys`).

Erasing the subject's key (:meth:`SubjectKeys.erase`) makes those fields unreadable for good,
while the line, its hash, the chain and every checkpoint stay exactly as they were. Readers
then get :data:`ERASED` in place of each personal field.

Two key stores ship here: :class:`MemorySubjectKeys` (tests) and :class:`SqliteSubjectKeys`
(a file, with SQLite's ``secure_delete`` so erased key bytes are overwritten). Any object with
``key_for`` and ``erase`` will do, e.g. one backed by the application's main store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import operator
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kzai_guard.audit.subject_keys import KEY_SIZE, SqliteSubjectKeys

__all__ = [
    "AAD_PREFIX",
    "ERASED",
    "PERSONAL_FIELDS",
    "SEALED",
    "BatchedSubjectKeys",
    "Encrypt",
    "MemorySubjectKeys",
    "ReservedSubjectKeys",
    "Sealer",
    "SqliteSubjectKeys",
    "SubjectKeys",
    "SubjectSeal",
    "seal",
    "subject_ref",
    "unseal",
]

PERSONAL_FIELDS: tuple[str, ...] = ("subject", "reviewer", "detail")
"""The record fields that are sealed."""

ERASED = "[erased]"
"""What a reader gets for a personal field whose subject key was erased."""

SEALED = "[sealed]"
"""What a reader gets for a personal field when it was given no key store."""

_NONCE_SIZE = 12
AAD_PREFIX = b"kzai-guard sealed v1\n"
"""What the associated data of every sealed record starts with (then id, newline, ref)."""
_nonce_bytes = operator.methodcaller("to_bytes", _NONCE_SIZE, "big")
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_third = operator.itemgetter(2)
_encrypt_of = operator.attrgetter("encrypt")
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
    """Keys in a dict; for tests and short-lived processes."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def key_for(self, ref: str, create: bool = True) -> bytes | None:
        """The key for ``ref``, made on first use when ``create``."""
        with self._lock:
            key = self._keys.get(ref)
            if key is None and create:
                key = self._keys[ref] = os.urandom(KEY_SIZE)
            return key

    def erase(self, ref: str) -> None:
        """Forget the key for ``ref``."""
        with self._lock:
            self._keys.pop(ref, None)


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

SubjectSeal = tuple[bytes, bytes, int | None, Encrypt | None, bytes]
"""How one batch seals for one owner: (key, key reference, key number, AES-GCM encrypt, AAD
tail).

The key number is set while the store's assignment of a reserved key is not durable. The first
three are what the C line encoder reads; the Python one also uses the cipher, which
:meth:`Sealer.for_batch` leaves out (``None``) when asked to."""


class Sealer:
    """Seals the personal fields of records for one writer, caching what it can.

    Key references and cipher objects are cached, never the decision to use a key: the key is
    asked of the store once per owner per batch (:meth:`for_batch`), and the writer never puts
    an erasure inside a batch, so a key erased through the log is never used for a record
    queued after the erasure. Nonces are a random 8-byte prefix per writer and a 4-byte
    counter (a fresh prefix on wrap-around), so they never repeat under one key.
    """

    def __init__(self, keys: SubjectKeys, cache_size: int = 65_536) -> None:
        self.keys = keys
        self._batched = keys if isinstance(keys, BatchedSubjectKeys) else None
        self._reserved = keys if isinstance(keys, ReservedSubjectKeys) else None
        self._refs: dict[str, tuple[str, bytes, bytes]] = {}
        self._ciphers: dict[bytes, AESGCM] = {}
        self._cache_size = cache_size
        self._prefix = os.urandom(8)
        self._counter = 0

    def ref(self, owner: str) -> str:
        """:func:`subject_ref` of ``owner``, cached."""
        return self._ref(owner)[0]

    def _ref(self, owner: str) -> tuple[str, bytes, bytes]:
        """The reference, and as bytes alone and after a newline (line, associated data)."""
        entry = self._refs.get(owner)
        if entry is None:
            if len(self._refs) >= self._cache_size:
                self._refs.clear()
            ref = subject_ref(owner)
            entry = self._refs[owner] = (ref, ref.encode(), b"\n" + ref.encode())
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
            cast(list[tuple[str, bytes, bytes]], cached)
            if None not in cached
            else [self._ref(owner) for owner in distinct]
        )
        names = list(map(_first, refs))
        if self._batched is not None:
            self._batched.prefetch(names)
        reserved = self._reserved
        if reserved is not None:
            keys: list[bytes | None] = list(reserved.keys_for(names))
            numbers = reserved.key_numbers(names)
        else:
            key_for = self.keys.key_for
            keys = [key_for(name, True) for name in names]
            numbers = [None] * len(names)
        encrypts: Iterable[Encrypt | None]
        if ciphers:
            # a missing key (None) finds no cipher and is reported by _cipher
            found = list(map(self._ciphers.get, cast(list[bytes], keys)))
            encrypts = map(
                _encrypt_of,
                found
                if None not in found
                else [self._cipher(key, name) for key, name in zip(keys, names, strict=True)],
            )
        else:
            if None in keys:
                raise _missing_key(names[keys.index(None)])
            encrypts = [None] * len(names)
        seals = zip(keys, map(_second, refs), numbers, encrypts, map(_third, refs), strict=True)
        return dict(zip(distinct, cast(Iterable[SubjectSeal], seals), strict=True))

    def _cipher(self, key: bytes | None, ref: str) -> AESGCM:
        if key is None:
            raise _missing_key(ref)
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
        """Drop the cached cipher objects (after an erasure, so no erased key stays in memory)."""
        self._ciphers.clear()

    def seal(self, record_id: str, owner: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The ``sealed`` member for ``fields``, under the key of ``owner``."""
        _, ref, number, encrypt, aad_tail = self.for_batch([owner])[owner]
        nonce = self.nonces(1)[0]
        ct = cast(Encrypt, encrypt)(
            nonce, orjson.dumps(fields), AAD_PREFIX + record_id.encode() + aad_tail
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
