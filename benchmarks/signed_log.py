"""The project's signed audit log as the suite drives it: open, append, verify, prove.

Every function here is a thin call into :mod:`kzai_guard.audit`; :func:`missing` says what is
not there yet, so that a section reports its figures as unavailable instead of failing.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kzai_guard.audit.record import AuditRecord


class Unavailable(RuntimeError):
    """A piece of the signed log the suite needs does not exist (yet)."""


def _attr(module: str, name: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{module} cannot be imported ({exc})") from exc
    try:
        return getattr(mod, name)
    except AttributeError as exc:
        raise Unavailable(f"{module}.{name} does not exist") from exc


def missing() -> str | None:
    try:
        _log_class()
    except Unavailable as exc:
        return str(exc)
    return None


def _log_class() -> Any:
    return _attr("kzai_guard.audit.log", "AuditLog")


_SIGNER: list[Any] = []


def signer() -> Any:
    """One checkpoint key for the whole run, kept in memory."""
    if not _SIGNER:
        _SIGNER.append(_attr("kzai_guard.audit.keys", "Signer").generate("kzai-bench"))
    return _SIGNER[0]


def open_log(directory: Path, durability: str, *, seal: bool = True) -> Any:
    """A fresh log in ``directory`` with the given durability (``async`` or ``sync``);
    ``seal=False`` writes personal fields in clear instead of encrypting them per subject."""
    cls = _log_class()
    if seal:
        return cls.open(directory, durability=durability, signer=signer())
    return cls.open(directory, durability=durability, signer=signer(), seal_personal_fields=False)


def append_all(log: Any, records: Sequence[AuditRecord], n: int) -> None:
    """Write ``n`` records, cycling through ``records``."""
    write = log.write
    size = len(records)
    for i in range(n):
        write(records[i % size])


def append_sync_each(log: Any, records: Sequence[AuditRecord], n: int) -> list[float]:
    """Write ``n`` records one at a time, waiting until each is durable; returns microseconds."""
    out: list[float] = []
    size = len(records)
    for i in range(n):
        start = time.perf_counter_ns()
        result = log.write(records[i % size])
        if isinstance(result, Future):
            result.result()
        out.append((time.perf_counter_ns() - start) / 1_000)
    return out


def append_sync_batched(log: Any, records: Sequence[AuditRecord], n: int, depth: int) -> None:
    """Keep ``depth`` writes in flight (as ``depth`` concurrent requests would)."""
    size = len(records)
    pending: list[Any] = []
    for i in range(n):
        pending.append(log.write(records[i % size]))
        if len(pending) >= depth:
            for future in pending:
                if isinstance(future, Future):
                    future.result()
            pending.clear()
    for future in pending:
        if isinstance(future, Future):
            future.result()


def _verifier() -> Callable[..., Any]:
    """The library's verification of a whole directory."""
    return _attr("kzai_guard.audit.verify", "verify_log")  # type: ignore[no-any-return]


def verify_missing() -> str | None:
    try:
        _verifier()
    except Unavailable as exc:
        return str(exc)
    return None


def verify(directory: Path) -> Any:
    """Verify the whole log in ``directory`` against the run's key; raises if it fails."""
    keyring = _attr("kzai_guard.audit.keys", "Keyring")([signer().public_key])
    report = _verifier()(directory, keyring)
    if not report.ok:
        raise RuntimeError(f"the log did not verify: {report.problem}")
    if report.records == 0:
        raise RuntimeError("the verifier checked no records")
    return report


class Prover:
    """Inclusion proofs from a closed log's stored tree: RFC 9162 paths, O(log n) reads.

    Uses :func:`kzai_guard.audit.merkle.inclusion_proof` over
    :class:`kzai_guard.audit.tree.TreeFiles`, the stored per-level hashes the log writes.
    """

    def __init__(self, directory: Path) -> None:
        tree_files = _attr("kzai_guard.audit.tree", "TreeFiles")
        self._proof = _attr("kzai_guard.audit.merkle", "inclusion_proof")
        self._check = _attr("kzai_guard.audit.merkle", "verify_inclusion")
        self._tree = tree_files(Path(directory))
        self.size: int = self._tree.count(0)
        if self.size == 0:
            raise RuntimeError(f"{directory} holds no tree")
        self.root: bytes = self._tree.compact_range(self.size).root()

    def prove(self, index: int) -> list[bytes]:
        proof: list[bytes] = self._proof(index, self.size, self._tree.subtree)
        return proof

    def check(self, index: int) -> None:
        """Prove one record and check the proof against the root; raises if it fails."""
        leaf = self._tree.leaf(index)
        if not self._check(index, self.size, leaf, self.prove(index), self.root):
            raise RuntimeError(f"inclusion proof of record {index} does not verify")

    def close(self) -> None:
        self._tree.close()


def prove_missing() -> str | None:
    try:
        _attr("kzai_guard.audit.tree", "TreeFiles")
        _attr("kzai_guard.audit.merkle", "inclusion_proof")
    except Unavailable as exc:
        return str(exc)
    return None


def bundle_missing() -> str | None:
    try:
        _attr("kzai_guard.audit.proof", "inclusion_bundle")
    except Unavailable as exc:
        return str(exc)
    return None


def inclusion_bundle(directory: Path, index: int) -> dict[str, Any]:
    """The library's inclusion-proof bundle of record ``index`` (what ``kzai-guard prove``
    writes): finds the line, reads the covering checkpoint, proves and self-checks."""
    bundle: dict[str, Any] = _attr("kzai_guard.audit.proof", "inclusion_bundle")(
        directory, seq=index
    )
    return bundle


def check_bundle(bundle: dict[str, Any]) -> None:
    """Verify a bundle offline against the run's key; raises if it does not hold."""
    keyring = _attr("kzai_guard.audit.keys", "Keyring")([signer().public_key])
    check = _attr("kzai_guard.audit.proof", "verify_bundle")(bundle, keyring)
    if not check.ok:
        raise RuntimeError(f"the inclusion bundle does not verify: {check.message}")
