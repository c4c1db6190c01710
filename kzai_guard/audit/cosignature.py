"""Witness cosignatures of checkpoints, C2SP ``tlog-cosignature`` (Ed25519, ``cosignature/v1``).

A witness that has checked a checkpoint is consistent with everything it saw of that log before
adds one more signature line to the note, under its own key name::

    — witness.example/w1 base64(key id || u64 big-endian timestamp || Ed25519 signature)

The signed message is ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint body.
The key id of a cosigner key is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]`` (0x04, not
the 0x01 of an ordinary signed-note key, so a log key and a witness key never share an id), and
its text form is the vkey ``name+hexid+base64(0x04 || public key)``.

A :class:`WitnessPolicy` says which cosigner keys an auditor trusts and how many of them must
have cosigned a checkpoint ("N of these").
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kzai_guard.audit.checkpoint import Checkpoint, SignedCheckpoint
from kzai_guard.errors import ConfigurationError

__all__ = [
    "Cosigner",
    "CosignerKey",
    "WitnessPolicy",
    "cosignature_message",
    "cosigner_key_id",
    "load_cosigner_key",
    "write_cosigner_keypair",
]

_ALG_COSIGNATURE_V1 = b"\x04"
_MAX_TIMESTAMP = 2**63 - 1


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 ``cosignature/v1`` key."""
    return hashlib.sha256(name.encode() + b"\n" + _ALG_COSIGNATURE_V1 + public_key).digest()[:4]


def cosignature_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """The bytes a witness signs: header line, time line, then the checkpoint body."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError(f"a cosignature timestamp is between 0 and 2**63-1, not {timestamp}")
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint.body()


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ConfigurationError(
            f"witness name {name!r} is not valid: use a non-empty name without spaces or '+', "
            "such as witness.example.com/w1"
        )
    return name


@dataclass(frozen=True, slots=True)
class CosignerKey:
    """A witness's public Ed25519 cosigning key with its name."""

    name: str
    raw: bytes

    @property
    def id(self) -> bytes:
        """The 4-byte key id."""
        return cosigner_key_id(self.name, self.raw)

    def vkey(self) -> str:
        """The text form ``name+hexid+base64(0x04||key)``."""
        encoded = base64.b64encode(_ALG_COSIGNATURE_V1 + self.raw).decode()
        return f"{self.name}+{self.id.hex()}+{encoded}"

    def timestamp(self, checkpoint: Checkpoint, signature: bytes) -> int | None:
        """The time this key cosigned ``checkpoint`` at, or ``None`` if ``signature`` is not its.

        ``signature`` is what follows the key id in the signature line: the 8-byte timestamp
        and the 64-byte Ed25519 signature.
        """
        if len(signature) != 72:
            return None
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > _MAX_TIMESTAMP:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(
                signature[8:], cosignature_message(checkpoint, timestamp)
            )
        except InvalidSignature:
            return None
        return int(timestamp)

    def cosigned(self, note: SignedCheckpoint) -> int | None:
        """The time of this key's valid cosignature on ``note``, or ``None`` if it has none."""
        for name, kid, sig in note.signatures:
            if name == self.name and kid == self.id:
                stamp = self.timestamp(note.checkpoint, sig)
                if stamp is not None:
                    return stamp
        return None

    @classmethod
    def from_vkey(cls, text: str) -> CosignerKey:
        """Parse ``name+hexid+base64(0x04||key)``; ``ValueError`` if malformed or inconsistent."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("a witness vkey has the form name+hexid+base64key")
        name, hex_id, b64 = parts
        raw = base64.b64decode(b64, validate=True)
        if len(raw) != 33 or raw[:1] != _ALG_COSIGNATURE_V1:
            raise ValueError("the vkey is not an Ed25519 cosignature/v1 key (type 0x04)")
        key = cls(_check_name(name), raw[1:])
        if key.id.hex() != hex_id.lower():
            raise ValueError("the vkey's key id does not match its name and key")
        return key


def load_cosigner_key(source: str | Path) -> CosignerKey:
    """A witness key from its vkey text or a file holding it (``NAME.pub`` from keygen)."""
    text = str(source)
    path = Path(text)
    if "+" in text and not path.exists():
        try:
            return CosignerKey.from_vkey(text)
        except ValueError as exc:
            raise ConfigurationError(f"{text!r} is not a witness key: {exc}") from None
    try:
        data = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read witness key {text}: {exc}") from exc
    try:
        return CosignerKey.from_vkey(data)
    except ValueError as exc:
        raise ConfigurationError(f"{text} holds no valid witness key: {exc}") from exc


class Cosigner:
    """A witness's private key: cosigns checkpoints it has checked."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey, name: str) -> None:
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key = key
        self.public_key = CosignerKey(_check_name(name), raw)

    @property
    def name(self) -> str:
        """The witness name written in its signature lines."""
        return self.public_key.name

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> tuple[str, bytes, bytes]:
        """The signature line ``(name, key id, timestamp || signature)`` for ``checkpoint``."""
        signature = self._key.sign(cosignature_message(checkpoint, timestamp))
        return self.name, self.public_key.id, struct.pack(">Q", timestamp) + signature

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        """A cosigner with a new random key (in memory only)."""
        return cls(Ed25519PrivateKey.generate(), name)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> Cosigner:
        """A cosigner from a PEM file written by :func:`write_cosigner_keypair`.

        The name defaults to the one in the ``.pub`` file beside it.
        """
        path = Path(path)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read witness private key {path}: {exc}") from exc
        if name is None:
            name = load_cosigner_key(path.with_suffix(".pub")).name
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(
                f"{path} holds no unencrypted PKCS#8 private key: {exc}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"{path} is not an Ed25519 private key")
        return cls(key, name)


def write_cosigner_keypair(directory: str | Path, name: str, stem: str = "witness") -> Cosigner:
    """Generate a witness key into ``directory``: ``STEM.key`` (PEM, 0600) and ``STEM.pub``.

    ``STEM.pub`` holds the vkey. The directory is made private (0700); existing files are
    never overwritten.
    """
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cosigner = Cosigner.generate(name)
    pem = cosigner._key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = directory / f"{stem}.pub"
    if public.exists():
        raise ConfigurationError(f"{public} exists; remove it or choose another directory")
    fd = os.open(directory / f"{stem}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    public.write_text(cosigner.public_key.vkey() + "\n")
    return cosigner


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Trust a checkpoint once ``quorum`` of ``keys`` have cosigned it ("N of these")."""

    keys: tuple[CosignerKey, ...]
    quorum: int

    def __post_init__(self) -> None:
        if not 1 <= self.quorum <= len(self.keys):
            raise ConfigurationError(
                f"a witness quorum of {self.quorum} needs between 1 and {len(self.keys)} "
                f"witnesses: {len(self.keys)} witness keys are given"
            )
        if len({(k.name, k.id) for k in self.keys}) != len(self.keys):
            raise ConfigurationError("the same witness key is given twice")

    @classmethod
    def of(
        cls, keys: Iterable[str | Path | CosignerKey], quorum: int | None = None
    ) -> WitnessPolicy:
        """A policy from keys (vkeys, files or objects); the quorum defaults to all of them."""
        loaded = tuple(k if isinstance(k, CosignerKey) else load_cosigner_key(k) for k in keys)
        return cls(loaded, len(loaded) if quorum is None else quorum)

    def cosigners(self, notes: Sequence[SignedCheckpoint]) -> list[str]:
        """The names of the trusted witnesses that validly cosigned these notes' body."""
        found: list[str] = []
        for key in self.keys:
            if any(key.cosigned(note) is not None for note in notes):
                found.append(key.name)
        return found

    def satisfied(self, notes: Sequence[SignedCheckpoint]) -> bool:
        """True if at least :attr:`quorum` trusted witnesses cosigned these notes' body."""
        return len(self.cosigners(notes)) >= self.quorum
