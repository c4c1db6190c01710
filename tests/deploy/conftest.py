"""Fixtures of the deployment tests: an empty PostgreSQL database of their own per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

ADMIN_URL = "postgresql://127.0.0.1/test"


@contextmanager
def new_database() -> Iterator[str]:
    """Create a database with a random name on the local server; drop it afterwards."""
    name = f"kzg_deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://127.0.0.1/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The URL of an empty database that no other test, and no other person's run, uses."""
    with new_database() as url:
        yield url
