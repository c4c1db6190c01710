"""PostgreSQL helpers for the audit tests: a private database, and one batch as a writer does it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import psycopg

from kzai_guard.audit.checkpoint import Checkpoint
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.lines import LineEncoder, chain
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.record import AuditRecord
from kzai_guard.audit.storage import LogStorage

PG_ADMIN_URL = "postgresql://127.0.0.1/test"


def private_database() -> Iterator[str]:
    """A fresh database with a random name, dropped afterwards (people test at once)."""
    name = f"kzg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://127.0.0.1/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def append_batch(
    storage: LogStorage,
    encoder: LineEncoder,
    records: Sequence[AuditRecord],
    signer: Signer | None = None,
    durable: bool = True,
) -> int:
    """Append ``records`` in one batch (signing a checkpoint if given ``signer``); first seq.

    The lines are chained in the storage's format, as the log's writer chains them.
    """
    bodies = encoder.bodies(records)
    with storage.sequence() as appending:
        head = appending.head
        prev = head.prev.hex().encode()
        lines, hashes, _ = chain(bodies, head.size, prev, 1 << 40, storage.format)
        tree = CompactRange(head.size, head.edge)
        nodes = tree.extend(hashes)
        appending.append(lines, hashes, nodes, durable)
        if signer is not None:
            checkpoint = Checkpoint(storage.origin, tree.size, tree.root())
            appending.add_checkpoint(checkpoint.sign([signer]), durable)
        return head.size
