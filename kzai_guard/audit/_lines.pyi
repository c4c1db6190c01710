"""Types of the C line encoder (``_lines.c``); see :mod:`kzai_guard.audit.lines`."""

from collections.abc import Mapping, Sequence
from typing import Any

class Encoder:
    """Encodes audit records into chained, canonical log lines."""

    def __init__(
        self,
        all_names: tuple[str, ...],
        open_names: tuple[str, ...],
        aad_prefix: bytes,
        sealed_names: tuple[str, ...] = ...,
        leaf_format: int = ...,
    ) -> None: ...
    def encode(
        self,
        records: Sequence[Any],
        seq: int,
        prev: bytes,
        room: int,
        seals: Mapping[str, tuple[Any, ...]] | None,
        nonces: Sequence[bytes],
        refs: Sequence[bytes] | None = None,
    ) -> tuple[list[bytes], list[bytes], int]:
        """The lines, their leaf hashes and their total size (see ``lines.LineEncoder``)."""
    def bodies(
        self,
        records: Sequence[Any],
        seals: Mapping[str, tuple[Any, ...]] | None,
        nonces: Sequence[bytes],
        refs: Sequence[bytes] | None = None,
    ) -> list[bytes]:
        """Each record's line between its ``prev`` digits and its ``seq`` digits, unhashed."""

def chain(
    bodies: Sequence[bytes], seq: int, prev: bytes, room: int, leaf_format: int = 1
) -> tuple[list[bytes], list[bytes], int]:
    """The lines of a prefix of ``bodies``, their leaf hashes and size (see ``lines.chain``)."""

def record_refs(
    owners_and_ids: Sequence[tuple[str | None, str]], seals: Mapping[str, tuple[Any, ...]]
) -> tuple[list[bytes], list[tuple[str, str]]]:
    """Each record's key reference, and the per-record ones indexed by owner (see
    ``shredding.Sealer.record_refs``)."""
