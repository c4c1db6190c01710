"""Fixtures of the deployment tests: an empty PostgreSQL database of their own per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import fresh_database


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The URL of an empty database that no other test, and no other person's run, uses."""
    with fresh_database() as url:
        yield url
