"""Any configuration file gives a valid configuration or a ``ConfigurationError``.

The documents are drawn as TOML values (tables, arrays, strings, numbers, dates) and written
with a small TOML writer, so that most of them get past the TOML parser and reach the checks of
``load_config`` and ``Guard``; arbitrary text and bytes cover files that are not TOML at all.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kzai_guard as kg
from kzai_guard import config
from kzai_guard.config import load_config

FIXTURES = [HealthCheck.function_scoped_fixture]
KEY = b"k" * 32

TOML_SCALARS = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.dates()
    | st.datetimes(timezones=st.none() | st.just(datetime.UTC))
    | st.sampled_from(["kz", "strict", "high", "credit", "legal-effect", "none", "monitor"])
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
POLICY = {
    "name": "loan_approval",
    "purpose": "credit-scoring",
    "domain": "credit",
    "significance": "legal-effect",
    "autonomy": "high",
    "risk": "high",
    "model": {"name": "m", "version": "1"},
}
GUARD_KEYS = sorted(config._GUARD_KEYS - {"store", "audit"})  # no files from a fuzzed key
POLICY_KEYS = [*POLICY, "statutory_basis", "notice_version", "fallback", "mode", "capabilities"]


def toml_key(key: str) -> str:
    return toml_value(key)


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (inline tables and arrays; strings as basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items())


def _table(base: dict[str, Any], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    changes = st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), TOML_VALUES, max_size=3)
    dropped = st.sets(st.sampled_from(sorted(base)), max_size=2)
    return st.tuples(changes, dropped).map(
        lambda c: {k: v for k, v in {**base, **c[0]}.items() if k not in c[1]}
    )


DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "guard": _table(
            {"profile": "kz", "contact": "support@example.kz", "subject_header": "X-Subject-Id"},
            GUARD_KEYS,
        )
        | TOML_VALUES,
        "policy": st.lists(_table(POLICY, POLICY_KEYS) | TOML_VALUES, max_size=3) | TOML_VALUES,
        "extra": TOML_VALUES,
    },
)


@given(data=DOCUMENTS)
def test_the_toml_writer_writes_what_tomllib_reads(data: dict[str, Any]) -> None:
    assert isinstance(tomllib.loads(toml_document(data)), dict)


@settings(max_examples=300, suppress_health_check=FIXTURES)
@given(data=DOCUMENTS)
def test_any_toml_document_is_a_configuration_or_a_configuration_error(
    tmp_path: Path, data: dict[str, Any]
) -> None:
    path = tmp_path / "kzai-guard.toml"
    path.write_text(toml_document(data), encoding="utf-8")
    try:
        policies, guard_settings = load_config(path)
    except kg.ConfigurationError:
        return
    assert policies and all(isinstance(p, kg.DecisionPolicy) for p in policies)
    assert isinstance(guard_settings, dict)


@settings(max_examples=200, suppress_health_check=FIXTURES)
@given(text=st.text())
def test_any_text_is_a_configuration_or_a_configuration_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kzai-guard.toml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(kg.ConfigurationError):
        load_config(path)


@settings(max_examples=100, suppress_health_check=FIXTURES)
@given(data=st.binary() | st.just(toml_document({"policy": [POLICY]}).encode("utf-16")))
def test_a_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "kzai-guard.toml"
    path.write_bytes(data)
    with contextlib.suppress(kg.ConfigurationError):
        load_config(path)


def test_a_written_document_round_trips_through_load_config(tmp_path: Path) -> None:
    path = tmp_path / "kzai-guard.toml"
    path.write_text(toml_document({"guard": {"profile": "kz"}, "policy": [POLICY]}))
    assert load_config(path) == ([kg.DecisionPolicy.model_validate(POLICY)], {"profile": "kz"})


GUARD_DOCUMENTS = st.fixed_dictionaries(
    {
        "guard": _table(
            {"profile": "kz", "contact": "support@example.kz", "subject_header": "X-Subject-Id"},
            GUARD_KEYS,
        ),
        "policy": st.lists(_table(POLICY, POLICY_KEYS), min_size=1, max_size=3),
    }
)
"""Documents that get past the checks of ``load_config`` to those of ``Guard``."""
STORE_VALUES = st.just("memory://") | TOML_VALUES.filter(lambda v: not isinstance(v, str))


@settings(max_examples=150, suppress_health_check=FIXTURES)
@given(data=GUARD_DOCUMENTS, store=st.none() | STORE_VALUES)
def test_guard_from_any_toml_document_is_a_guard_or_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict[str, Any], store: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    data["guard"] = {k: v for k, v in data["guard"].items() if k not in ("store", "audit")}
    data["guard"]["store"] = "memory://" if store is None else store
    path = tmp_path / "kzai-guard.toml"
    path.write_text(toml_document(data), encoding="utf-8")
    try:
        guard = kg.Guard.from_file(path, audit=kg.MemorySink(), pseudonym_key=KEY)
    except kg.ConfigurationError:
        return
    try:
        assert guard.policy_names
    finally:
        guard.close()
