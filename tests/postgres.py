"""A PostgreSQL database of its own for a test (created with a random name, dropped after), so
that people running the suite at once on one server never collide."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN_URL = "postgresql://127.0.0.1/test"
PG_ADDRESS = ("127.0.0.1", 5432)


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped (connections and all) on exit."""
    name = f"kzg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://127.0.0.1/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
