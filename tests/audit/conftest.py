"""Shared helpers for the audit log tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.record import AuditRecord, EventKind

FORMATS = (1, 2)
"""The log formats: 1, the tree's entry is the line; 2, it is the line's SHA-256."""


def leaf_of(log_format: int, line: bytes) -> bytes:
    """The RFC 9162 leaf of a log line in ``log_format``, written from the format's definition
    (``SHA-256(0x00 || entry)``, the entry the line or its SHA-256), not from the library."""
    entry = line if log_format == 1 else hashlib.sha256(line).digest()
    return hashlib.sha256(b"\x00" + entry).digest()


def make_record(i: int, **fields: object) -> AuditRecord:
    """A realistic decision record number ``i``."""
    values: dict[str, object] = {
        "id": f"dec-{i:06d}",
        "time": 1_700_000_000_000_000 + i,
        "kind": EventKind.DECISION,
        "policy": "credit.score",
        "subject": f"p:{i % 7:04x}",
        "purpose": "credit",
        "verdict": "allow" if i % 3 else "block",
        "latency_us": 100 + i,
        "detail": f"score={i % 100}",
    }
    values.update(fields)
    return AuditRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def signer() -> Signer:
    """A fresh in-memory checkpoint signer."""
    return Signer.generate("test-key")


@pytest.fixture
def keyring(signer: Signer) -> Keyring:
    """A keyring trusting :func:`signer`."""
    return Keyring([signer.public_key])


WriteLog = Callable[..., Path]


@pytest.fixture
def write_log(tmp_path: Path, signer: Signer) -> WriteLog:
    """Write ``n`` records into a fresh log and close it; returns the directory."""

    def write(n: int, *, directory: Path | None = None, **options: object) -> Path:
        path = directory or tmp_path / "audit"
        options.setdefault("checkpoint_every", 7)
        log = AuditLog.open(path, signer=signer, **options)  # type: ignore[arg-type]
        for i in range(n):
            log.write(make_record(i))
        log.close()
        return path

    return write
