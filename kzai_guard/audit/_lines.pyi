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
