"""Fixtures of the deployment tests: a fresh PostgreSQL database per module."""

from __future__ import annotations

from tests.test_cross_process import pg_database

__all__ = ["pg_database"]
