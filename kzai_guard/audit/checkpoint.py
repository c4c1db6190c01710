"""Signed checkpoints in the C2SP ``tlog-checkpoint`` / ``signed-note`` format.

A checkpoint commits to the first ``size`` records of the log by their RFC 9162 root hash::

    <origin>
    <size>
    <base64 root hash>

    — <key name> <base64(4-byte key id || Ed25519 signature)>

The body (the first three lines, each ending in a newline) is what is signed. Several signature
lines may follow, e.g. the old and the new key during a rotation, or witnesses' cosignatures;
lines from unknown keys are ignored when a known key has signed.

On disk, the checkpoints taken while a segment was active are appended to the segment's
``.checkpoints`` file, one note after another, each followed by one empty line.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kzai_guard.audit.keys import Keyring, Signer

__all__ = [
    "Checkpoint",
    "CheckpointStatus",
    "SignedCheckpoint",
    "parse_notes",
]

_DASH = "\u2014"


class CheckpointStatus(enum.Enum):
    """The outcome of checking a checkpoint's signatures against a keyring."""

    VALID = "valid"
    """At least one trusted key signed the body and every trusted key's signature holds."""
    FORGED = "forged"
    """A signature that names a trusted key does not verify."""
    UNKNOWN_KEY = "unknown-key"
    """No signature is from a trusted key."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The claim "the log named ``origin`` had ``size`` records with this ``root``"."""

    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        """The signed note body."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n".encode()

    def sign(self, signers: Iterable[Signer]) -> SignedCheckpoint:
        """Sign the body with each signer."""
        body = self.body()
        sigs = tuple((s.name, s.key_id, s.sign(body)) for s in signers)
        if not sigs:
            raise ValueError("a checkpoint needs at least one signer")
        return SignedCheckpoint(self, sigs)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint with its signature lines ``(key name, key id, signature)``."""

    checkpoint: Checkpoint
    signatures: tuple[tuple[str, bytes, bytes], ...] = field(default=())

    def note(self) -> str:
        """The signed note text (ends with a newline)."""
        return self.checkpoint.body().decode() + "\n" + self.signature_lines()

    def signature_lines(self) -> str:
        """The note's signature lines, each ``— <name> <base64>`` and a newline."""
        return "".join(
            f"{_DASH} {name} {base64.b64encode(kid + sig).decode()}\n"
            for name, kid, sig in self.signatures
        )

    def with_signatures(self, extra: Iterable[tuple[str, bytes, bytes]]) -> SignedCheckpoint:
        """This note with the signature lines ``extra`` added (those it holds already skipped)."""
        lines = list(self.signatures)
        lines.extend(s for s in extra if s not in lines)
        return SignedCheckpoint(self.checkpoint, tuple(lines))

    def status(self, keyring: Keyring) -> CheckpointStatus:
        """Check the signatures against ``keyring``."""
        body = self.checkpoint.body()
        trusted = 0
        for name, kid, sig in self.signatures:
            key = keyring.get(name, kid)
            if key is None:
                continue
            if not key.verify(sig, body):
                return CheckpointStatus.FORGED
            trusted += 1
        return CheckpointStatus.VALID if trusted else CheckpointStatus.UNKNOWN_KEY

    @classmethod
    def parse(cls, text: str) -> SignedCheckpoint:
        """Parse one signed note; ``ValueError`` if it is not a well-formed checkpoint."""
        body, sep, sigblock = text.partition("\n\n")
        if not sep:
            raise ValueError("a signed note needs an empty line before its signatures")
        lines = body.split("\n")
        if len(lines) < 3:
            raise ValueError("a checkpoint body has an origin, a size and a root hash")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not origin or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
            raise ValueError("malformed checkpoint origin or size")
        if any(not line for line in lines[3:]):
            raise ValueError("empty line inside a checkpoint body")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise ValueError("the root hash is not base64") from exc
        if len(root) != 32:
            raise ValueError("the root hash is not 32 bytes")
        sigs: list[tuple[str, bytes, bytes]] = []
        if not sigblock.endswith("\n"):
            raise ValueError("a signed note ends with a newline")
        for line in sigblock[:-1].split("\n"):
            prefix, _, rest = line.partition(" ")
            name, _, b64 = rest.partition(" ")
            if prefix != _DASH or not name or not b64:
                raise ValueError(f"malformed signature line {line!r}")
            try:
                raw = base64.b64decode(b64, validate=True)
            except binascii.Error as exc:
                raise ValueError("a signature is not base64") from exc
            if len(raw) < 5:
                raise ValueError("a signature line is too short")
            sigs.append((name, raw[:4], raw[4:]))
        if not sigs:
            raise ValueError("a signed note needs at least one signature")
        checkpoint = Checkpoint(origin, int(size_text), root)
        if checkpoint.body().decode() != body + "\n":
            raise ValueError("the checkpoint body is not in canonical form")
        return cls(checkpoint, tuple(sigs))


def parse_notes(data: str) -> Iterator[SignedCheckpoint | ValueError]:
    """The notes of a ``.checkpoints`` file, in order; a torn last note is skipped.

    Each malformed note is yielded as its ``ValueError`` so a verifier can report it.
    """
    blocks = data.split("\n\n")
    # a note is complete once the empty line after its signatures exists
    for i in range((len(blocks) - 1) // 2):
        body, sigs = blocks[2 * i], blocks[2 * i + 1]
        try:
            yield SignedCheckpoint.parse(body + "\n\n" + sigs + "\n")
        except ValueError as exc:
            yield exc


def read_notes(path: Path) -> list[SignedCheckpoint | ValueError]:
    """All notes of one ``.checkpoints`` file (empty if it does not exist)."""
    try:
        data = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return list(parse_notes(data))
