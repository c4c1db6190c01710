"""Ed25519 keys for checkpoints: the :class:`Signer`, public keys and the keyring.

A checkpoint is signed by one :class:`Signer`; a :class:`Keyring` of :class:`PublicKey`
objects verifies checkpoints from every key the log has used, so rotating the key (a new signer
signs from the next checkpoint on) keeps old checkpoints verifiable.

Key ids and the text form of a public key follow the C2SP signed-note specification:
the key id is the first four bytes of ``SHA-256(name || 0x0A || 0x01 || public key)`` and a
public key is written ``<name>+<hex key id>+<base64(0x01 || public key)>`` (a "vkey").

The private key can come from a PEM file (:meth:`Signer.from_file`), an environment variable
(:meth:`Signer.from_env`), or any callable that signs, such as a KMS or HSM client
(:meth:`Signer.from_callable`).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InternalError, InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kzai_guard.errors import ConfigurationError
from kzai_guard.private_files import FILE_MODE, private_directory

__all__ = [
    "Keyring",
    "PublicKey",
    "Signer",
    "default_key_name",
    "key_id",
    "load_public_key",
    "write_keypair",
]

_ALG_ED25519 = b"\x01"


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP signed-note key id of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + _ALG_ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ConfigurationError(
            f"key name {name!r} is not valid: use a non-empty name without spaces or '+'"
        )
    return name


def default_key_name() -> str:
    """A fresh key name, ``kzai-guard-audit-<UTC timestamp>``."""
    now = datetime.datetime.now(datetime.UTC)
    return f"kzai-guard-audit-{now:%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 checkpoint verification key with its name."""

    name: str
    raw: bytes

    @property
    def id(self) -> bytes:
        """The 4-byte key id."""
        return key_id(self.name, self.raw)

    def vkey(self) -> str:
        """The C2SP text form ``name+hexid+base64(0x01||key)``."""
        encoded = base64.b64encode(_ALG_ED25519 + self.raw).decode()
        return f"{self.name}+{self.id.hex()}+{encoded}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_vkey(cls, text: str) -> PublicKey:
        """Parse ``name+hexid+base64(0x01||key)``; ``ValueError`` if malformed or inconsistent."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("a vkey has the form name+hexid+base64key")
        name, hex_id, b64 = parts
        raw = base64.b64decode(b64, validate=True)
        if len(raw) != 33 or raw[:1] != _ALG_ED25519:
            raise ValueError("the vkey is not an Ed25519 key")
        key = cls(_check_name(name), raw[1:])
        if key.id.hex() != hex_id.lower():
            raise ValueError("the vkey's key id does not match its name and key")
        return key


def load_public_key(source: str | Path, *, name: str | None = None) -> PublicKey:
    """A public key from a vkey string, a file holding a vkey, or a PEM public-key file.

    For PEM files the key name is ``name``, or the file name without its suffix.
    """
    text = str(source)
    path = Path(text)
    if "+" in text and not path.exists():
        return PublicKey.from_vkey(text)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read public key {text}: {exc}") from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            loaded = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"{text} holds no readable public key: {exc}") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise ConfigurationError(f"{text} is not an Ed25519 public key")
        raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicKey(_check_name(name or path.name.split(".")[0]), raw)
    try:
        return PublicKey.from_vkey(data.decode())
    except ValueError as exc:
        raise ConfigurationError(f"{text} holds no valid public key: {exc}") from exc


class Signer:
    """Signs checkpoint bodies with one Ed25519 key.

    ``sign`` takes the message and returns the 64-byte signature; it may call out to a KMS or
    HSM. Build one with :meth:`generate`, :meth:`from_file`, :meth:`from_env`,
    :meth:`from_private_key` or :meth:`from_callable`.
    """

    __slots__ = ("_sign", "public_key")

    def __init__(self, public_key: PublicKey, sign: Callable[[bytes], bytes]) -> None:
        self.public_key = public_key
        self._sign = sign

    @property
    def name(self) -> str:
        """The key name written in signature lines."""
        return self.public_key.name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return self.public_key.id

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``."""
        signature = self._sign(message)
        if len(signature) != 64:
            raise ValueError(f"signer {self.name} returned {len(signature)} bytes, not 64")
        return signature

    @classmethod
    def from_private_key(cls, key: Ed25519PrivateKey, name: str) -> Signer:
        """A signer holding a ``cryptography`` private key in memory."""
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(PublicKey(_check_name(name), raw), key.sign)

    @classmethod
    def generate(cls, name: str | None = None) -> Signer:
        """A signer with a new random key (kept in memory only)."""
        return cls.from_private_key(Ed25519PrivateKey.generate(), name or default_key_name())

    @classmethod
    def from_pem(cls, pem: bytes, name: str) -> Signer:
        """A signer from an unencrypted PKCS#8 PEM private key."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except TypeError:
            raise ConfigurationError(
                f"the private key for {name} is encrypted; give it unencrypted (PKCS#8, "
                "no password), or sign with a KMS or HSM through Signer.from_callable"
            ) from None
        except (ValueError, UnsupportedAlgorithm, InternalError) as exc:
            # OpenSSL rejects some malformed keys (a truncated X448 one) as an internal error
            raise ConfigurationError(f"the private key for {name} cannot be read: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"the private key for {name} is not an Ed25519 key")
        return cls.from_private_key(key, name)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> Signer:
        """A signer from a PEM file; the key name defaults to the file name without suffix."""
        path = Path(path)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read private key {path}: {exc}") from exc
        return cls.from_pem(pem, name or path.name.split(".")[0])

    @classmethod
    def from_env(cls, variable: str = "KZAI_GUARD_AUDIT_KEY", name: str | None = None) -> Signer:
        """A signer from an environment variable holding a PEM private key.

        The name comes from ``name`` or from ``<variable>_NAME``.
        """
        pem = os.environ.get(variable)
        if not pem:
            raise ConfigurationError(f"environment variable {variable} holds no private key")
        key_name = name or os.environ.get(f"{variable}_NAME")
        if not key_name:
            raise ConfigurationError(f"set {variable}_NAME to the key's name, or pass name=")
        return cls.from_pem(pem.encode(), key_name)

    @classmethod
    def from_callable(cls, name: str, public_key: bytes, sign: Callable[[bytes], bytes]) -> Signer:
        """A signer whose private key lives elsewhere (KMS, HSM): ``sign(message) -> sig``."""
        if len(public_key) != 32:
            raise ConfigurationError("an Ed25519 public key has 32 bytes")
        return cls(PublicKey(_check_name(name), bytes(public_key)), sign)


def write_keypair(directory: str | Path, name: str | None = None) -> tuple[Path, Path, Signer]:
    """Generate a key pair into ``directory``: ``NAME.key`` (PEM, mode 0600) and ``NAME.pub``.

    ``NAME.pub`` holds the vkey text form. Refuses to overwrite existing files. A directory
    made for them is mode 0700.
    """
    directory = Path(directory)
    name = _check_name(name or default_key_name())
    private_directory(directory)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path = directory / f"{name}.key"
    public_path = directory / f"{name}.pub"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    signer = Signer.from_private_key(key, name)
    public_path.write_text(signer.public_key.vkey() + "\n")
    return private_path, public_path, signer


class Keyring:
    """Public keys trusted to sign checkpoints, looked up by (name, key id)."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[tuple[str, bytes], PublicKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PublicKey) -> None:
        """Trust one more key."""
        self._keys[(key.name, key.id)] = key

    def get(self, name: str, kid: bytes) -> PublicKey | None:
        """The key with this name and id, or ``None``."""
        return self._keys.get((name, kid))

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def load(cls, sources: Iterable[str | Path | PublicKey]) -> Keyring:
        """A keyring from vkey strings, key files or :class:`PublicKey` objects."""
        return cls(s if isinstance(s, PublicKey) else load_public_key(s) for s in sources)
