"""The pure rules of the data behind a decision: what is refused, what is digested, what the
person is shown."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import kzai_guard as kg
from kzai_guard.core.data_basis import (
    MAX_TEXT_VALUE,
    BasisInput,
    Redaction,
    Source,
    basis_digest,
    basis_json,
    declared_inputs,
    missing_inputs,
    person_view,
    read_basis,
    reported_values,
)
from kzai_guard.errors import InvalidDataBasis

names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
declarations = st.lists(
    st.builds(
        BasisInput,
        name=names,
        source=st.sampled_from(Source),
        redaction=st.sampled_from(Redaction),
    ),
    max_size=8,
    unique_by=lambda item: item.name,
)
salts = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@st.composite
def reports(draw: st.DrawFn) -> tuple[tuple[BasisInput, ...], dict[str, Any]]:
    """A declaration and values reported for some of its inputs."""
    declared = tuple(draw(declarations))
    chosen = draw(st.sets(st.sampled_from([d.name for d in declared]))) if declared else set()
    return declared, {name: draw(scalars) for name in sorted(chosen)}


@given(reports(), salts, st.randoms(use_true_random=False))
def test_the_kept_bytes_do_not_depend_on_the_order_values_were_reported(
    report: tuple[tuple[BasisInput, ...], dict[str, Any]], salt: str, rng: random.Random
) -> None:
    _, values = report
    shuffled = list(values.items())
    rng.shuffle(shuffled)
    assert basis_json(dict(shuffled), salt) == basis_json(values, salt)


@given(reports(), salts)
def test_the_kept_bytes_read_back_as_the_values_reported(
    report: tuple[tuple[BasisInput, ...], dict[str, Any]], salt: str
) -> None:
    _, values = report
    kept = basis_json(values, salt)
    assert read_basis(kept) == values
    assert basis_digest(kept) == hashlib.sha256(kept).hexdigest()


@given(reports(), salts, salts)
def test_a_different_salt_gives_a_different_digest_for_the_same_values(
    report: tuple[tuple[BasisInput, ...], dict[str, Any]], salt: str, other: str
) -> None:
    _, values = report
    same = basis_digest(basis_json(values, salt)) == basis_digest(basis_json(values, other))
    assert same is (salt == other)


@given(reports(), salts, scalars)
def test_changing_one_value_changes_the_digest(
    report: tuple[tuple[BasisInput, ...], dict[str, Any]], salt: str, replacement: Any
) -> None:
    _, values = report
    if not values:
        return
    name = sorted(values)[0]
    changed = {**values, name: replacement}
    same_json = orjson.dumps(replacement) == orjson.dumps(values[name])
    digests_equal = basis_digest(basis_json(changed, salt)) == basis_digest(
        basis_json(values, salt)
    )
    assert digests_equal is same_json


@given(reports())
def test_the_person_sees_every_declared_input_once_in_order_and_no_withheld_value(
    report: tuple[tuple[BasisInput, ...], dict[str, Any]],
) -> None:
    declared, values = report
    view = person_view(declared_inputs(declared), values)
    assert [entry["name"] for entry in view] == [d.name for d in declared]
    for item, entry in zip(declared, view, strict=True):
        assert entry["reported"] is (item.name in values)
        if item.redaction is Redaction.SHOWN:
            assert (entry["withheld"], entry["value"]) == (False, values.get(item.name))
            assert "reason" not in entry
        else:
            assert entry["withheld"] is True
            assert "value" not in entry
            assert entry["reason"]


@given(reports(), names)
def test_a_name_the_policy_does_not_declare_is_refused(
    report: tuple[tuple[BasisInput, ...], dict[str, Any]], name: str
) -> None:
    declared, values = report
    spec = declared_inputs(declared)
    if name in spec:
        assert reported_values(spec, {**values, name: 1}) == {**values, name: 1}
    else:
        with pytest.raises(InvalidDataBasis, match=f"does not declare the input\\(s\\) {name}:"):
            reported_values(spec, {**values, name: 1})


@given(reports())
def test_missing_inputs_are_the_declared_ones_not_reported_in_declaration_order(
    report: tuple[tuple[BasisInput, ...], dict[str, Any]],
) -> None:
    declared, values = report
    assert missing_inputs(declared_inputs(declared), values) == tuple(
        d.name for d in declared if d.name not in values
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "list is not a JSON scalar"),
        ({"a": 1}, "dict is not a JSON scalar"),
        (float("nan"), "numbers must be finite"),
        (2**53 + 1, "integers must lie within"),
        ("x" * (MAX_TEXT_VALUE + 1), f"text longer than {MAX_TEXT_VALUE} characters"),
    ],
    ids=["list", "object", "nan", "big-integer", "long-text"],
)
def test_a_value_that_is_not_a_json_scalar_is_refused(value: Any, message: str) -> None:
    spec = declared_inputs((BasisInput(name="age", source=Source.REQUEST),))
    with pytest.raises(InvalidDataBasis, match=message):
        reported_values(spec, {"age": value})


def test_a_shown_input_with_a_reason_is_refused() -> None:
    with pytest.raises(ValidationError, match="a reason is for withheld inputs"):
        BasisInput(name="age", source=Source.REQUEST, reason="why")


def test_a_policy_declaring_an_input_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="data_basis declares age more than once"):
        kg.DecisionPolicy(
            name="loan",
            significance="legal-effect",
            autonomy="high",
            risk="high",
            data_basis=(
                BasisInput(name="age", source=Source.REQUEST),
                BasisInput(name="age", source=Source.DERIVED),
            ),
        )


def test_a_policy_without_a_data_basis_keeps_its_digest() -> None:
    fields: dict[str, Any] = {
        "name": "loan",
        "significance": "legal-effect",
        "autonomy": "high",
        "risk": "high",
    }
    plain = kg.DecisionPolicy(**fields)
    declared = kg.DecisionPolicy(
        **fields, data_basis=(BasisInput(name="age", source=Source.REQUEST),)
    )
    canonical = {**plain.model_dump(mode="json"), "capabilities": []}
    del canonical["inputs"], canonical["monitoring"], canonical["data_basis"]
    expected = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert plain.digest == expected
    assert declared.digest != plain.digest
