"""A PostgreSQL database of a test's own on the local server (127.0.0.1:5432, trust auth).

Each database gets a random name and is dropped afterwards, so that people running the suite at
the same time on one server never share one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

__all__ = ["ADMIN_URL", "new_database"]

ADMIN_URL = "postgresql://127.0.0.1/test"
"""The admin database, where databases are created and dropped."""


@contextmanager
def new_database(prefix: str = "kzg_test") -> Iterator[str]:
    """Create an empty database with a random name; its URL; drop it (connections and all)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://127.0.0.1/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
