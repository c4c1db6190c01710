"""``open_store`` on any string: a store, or a ``ConfigurationError`` for a non-store URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kzai_guard as kg
from kzai_guard.stores.url import open_store

FIXTURES = [HealthCheck.function_scoped_fixture]
SCHEMES = ("memory://", "sqlite:///", "postgresql://", "postgres://")


@settings(max_examples=300)
@given(url=st.text() | st.sampled_from(SCHEMES).flatmap(lambda s: st.text().map(lambda t: t + s)))
def test_a_string_that_is_not_a_store_url_is_a_configuration_error(url: str) -> None:
    if url == "memory://" or url.startswith(SCHEMES[1:]):
        return
    with pytest.raises(kg.ConfigurationError, match="unknown store URL"):
        open_store(url)


def test_memory_url_opens_a_store() -> None:
    open_store("memory://").close()


@settings(max_examples=50, suppress_health_check=FIXTURES)
@given(name=st.text(st.characters(categories=("L", "N")), min_size=1, max_size=20))
def test_a_sqlite_url_inside_the_directory_opens_a_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(f"sqlite:///{name}.db")
    store.close()
    assert (tmp_path / f"{name}.db").exists()


def test_a_sqlite_url_without_a_path_is_a_configuration_error() -> None:
    with pytest.raises(kg.ConfigurationError, match="needs a path"):
        open_store("sqlite:///")
