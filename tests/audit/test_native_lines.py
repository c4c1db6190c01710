"""The C line encoder writes exactly the Python encoder's bytes, and refuses what it cannot."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kzai_guard.audit.lines import (
    NATIVE,
    PUREPYTHON_VARIABLE,
    LineEncoder,
    _python_chain,
    chain,
)
from kzai_guard.audit.record import AuditRecord, EventKind
from kzai_guard.audit.shredding import (
    AAD_PREFIX,
    RECORD_REF_PREFIX,
    SEALED_FIELDS,
    MemorySubjectKeys,
    Sealer,
    SubjectSeal,
    unseal,
)

from .conftest import FORMATS, leaf_of, make_record

REQUIRED = os.environ.get("KZAI_GUARD_REQUIRE_NATIVE") == "1"
needs_native = pytest.mark.skipif(
    not NATIVE and not REQUIRED, reason="the C line encoder was not built here"
)

_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_optional_text = st.one_of(st.none(), _text)
_TEXT_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(AuditRecord)
    if f.name not in ("id", "time", "kind", "latency_us")
)


@st.composite
def records(draw: st.DrawFn, ints: st.SearchStrategy[int] = _int64) -> AuditRecord:
    """Any record the guard could hand over: text fields of any valid text, or absent."""
    values: dict[str, Any] = {name: draw(_optional_text) for name in _TEXT_FIELDS}
    return AuditRecord(
        id=draw(_text),
        time=draw(ints),
        kind=draw(st.sampled_from(EventKind)),
        latency_us=draw(st.one_of(st.none(), ints)),
        **values,
    )


def _encoders(sealer: Sealer | None) -> tuple[LineEncoder, LineEncoder]:
    return LineEncoder(sealer, native=False), LineEncoder(sealer, native=True)


_NAMES = tuple(sorted(f.name for f in dataclasses.fields(AuditRecord)))


def _c_encoder(leaf_format: int = 1) -> Any:
    """The C encoder itself, configured as the log configures it."""
    from kzai_guard.audit import _lines

    open_names = tuple(n for n in _NAMES if n not in SEALED_FIELDS)
    return _lines.Encoder(_NAMES, open_names, AAD_PREFIX, SEALED_FIELDS, leaf_format=leaf_format)


class _UnindexedKeys(MemorySubjectKeys):
    """A key store without an index of record references: lines name the owner's key."""

    remember = None  # type: ignore[assignment]
    record_key = None  # type: ignore[assignment]


@needs_native
def test_the_c_encoder_is_built_where_the_build_requires_it() -> None:
    assert NATIVE


def test_the_environment_variable_turns_the_c_encoder_off() -> None:
    code = (
        "from kzai_guard.audit.lines import NATIVE, PUREPYTHON_VARIABLE, LineEncoder, chain\n"
        "print(NATIVE)\n"
        "try:\n    LineEncoder(None, native=True)\n"
        "except RuntimeError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, PUREPYTHON_VARIABLE: "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[0] == "False"
    assert PUREPYTHON_VARIABLE in done.stdout.splitlines()[1]


@needs_native
@given(
    st.lists(records(), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=2**40),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.integers(min_value=1, max_value=6000),
    st.sampled_from(["clear", "sealed", "numbered", "owner-ref"]),
    st.sampled_from(FORMATS),
)
def test_c_and_python_chunks_are_the_same_bytes(
    chunk: list[AuditRecord], seq: int, prev: str, room: int, how: str, log_format: int
) -> None:
    keys = _UnindexedKeys() if how in ("numbered", "owner-ref") else MemorySubjectKeys()
    sealer = None if how == "clear" else Sealer(keys)
    python = LineEncoder(sealer, native=False, leaf_format=log_format)
    seals, nonces, refs = python._seals(chunk)
    if how == "numbered" and seals:
        # as while a reserved key's assignment is not yet durable
        seals = {owner: (s[0], s[1], 40 + i, *s[3:]) for i, (owner, s) in enumerate(seals.items())}
    expected = python._python_chunk(chunk, seq, prev.encode(), room, seals, nonces, refs)
    # without refs, the C encoder names each owner's key by the seal's reference
    given_refs = None if how in ("numbered", "owner-ref") else refs
    encoder = _c_encoder(log_format)
    got = encoder.encode(chunk, seq, prev.encode(), room, seals, nonces, given_refs)
    assert got == expected


@pytest.mark.parametrize("native", [False, pytest.param(True, marks=needs_native)])
@pytest.mark.parametrize("log_format", FORMATS)
def test_lines_chain_by_the_leaf_of_their_format(native: bool, log_format: int) -> None:
    encoder = LineEncoder(None, native=native, leaf_format=log_format)
    lines, hashes, _ = encoder.encode([make_record(i) for i in range(5)], 0, b"0" * 64, 1 << 30)
    assert hashes == [leaf_of(log_format, line) for line in lines]
    prevs = [orjson.loads(line)["prev"] for line in lines]
    assert prevs == ["0" * 64] + [h.hex() for h in hashes[:-1]]


@needs_native
def test_the_c_encoder_refuses_an_unknown_leaf_format() -> None:
    with pytest.raises(ValueError, match="unknown leaf format 3"):
        _c_encoder(3)


@needs_native
@given(st.lists(records(), min_size=1, max_size=8))
def test_sealed_lines_of_both_encoders_unseal_to_the_same_fields(
    chunk: list[AuditRecord],
) -> None:
    keys = MemorySubjectKeys()
    python, native = _encoders(Sealer(keys))
    for line_py, line_c in zip(
        python.encode(chunk, 0, b"0" * 64, 1 << 30)[0],
        native.encode(chunk, 0, b"0" * 64, 1 << 30)[0],
        strict=True,
    ):
        assert _readable(line_c, keys) == _readable(line_py, keys)


def _readable(line: bytes, keys: MemorySubjectKeys) -> dict[str, Any]:
    """A line with its sealed fields decrypted; the ciphertext and the hash of the line before
    (both differ with the random nonces) left out."""
    value = orjson.loads(line)
    del value["prev"]
    sealed = value.pop("sealed", None)
    if sealed is not None:
        rec_id = value["rec"]["id"]
        ref = sealed["ref"]
        key = (
            keys.record_key(ref)
            if ref.startswith(RECORD_REF_PREFIX)
            else keys.key_for(ref, create=False)
        )
        value["personal"] = unseal(sealed, rec_id, key)
        value["fields"] = sealed["fields"]
    return value


# Records only the Python encoder handles: the C one refuses them and the chunk falls back.
_REFUSED = [
    make_record(1, detail="lone \ud800 surrogate"),
    make_record(2, subject="p:\udfff"),
    make_record(3, id="dec-\ud801"),
    make_record(4, latency_us=2**63),
    make_record(5, latency_us=True),
    make_record(6, latency_us=1.5),
]


@needs_native
@pytest.mark.parametrize("record", _REFUSED, ids=lambda r: repr(r.id))
def test_what_the_c_encoder_refuses_is_written_as_the_python_encoder_writes_it(
    record: AuditRecord,
) -> None:
    chunk = [make_record(0), record, make_record(9)]
    python, native = _encoders(None)
    assert native.encode(chunk, 3, b"0" * 64, 1 << 30) == python.encode(
        chunk, 3, b"0" * 64, 1 << 30
    )
    keys = MemorySubjectKeys()
    python, native = _encoders(Sealer(keys))
    lines_py = python.encode(chunk, 3, b"0" * 64, 1 << 30)[0]
    lines_c = native.encode(chunk, 3, b"0" * 64, 1 << 30)[0]
    assert [_readable(line, keys) for line in lines_c] == [
        _readable(line, keys) for line in lines_py
    ]


@needs_native
@given(st.lists(records(st.integers(min_value=-(2**64), max_value=2**64)), max_size=6))
def test_any_record_is_encoded_as_the_python_encoder_encodes_it(
    chunk: list[AuditRecord],
) -> None:
    python, native = _encoders(None)
    try:
        expected: object = python.encode(chunk, 0, b"0" * 64, 1 << 30)
    except (TypeError, ValueError) as exc:  # an int orjson cannot write either
        expected = type(exc)
    try:
        got: object = native.encode(chunk, 0, b"0" * 64, 1 << 30)
    except (TypeError, ValueError) as exc:
        got = type(exc)
    assert got == expected


_KEY = b"k" * 32
_GOOD_SEAL: SubjectSeal = (_KEY, b"sk:00", None, lambda n, p, a: b"", b"")


@needs_native
@pytest.mark.parametrize(
    ("prev", "seals", "nonces", "error"),
    [
        (b"0" * 63, None, [], ValueError),
        (b"0" * 64, ["not", "a", "dict"], [], TypeError),
        (b"0" * 64, {"p:0000": (_KEY, b"sk:00")}, [b"n" * 12], TypeError),
        (b"0" * 64, {"p:0000": (b"short", b"sk:00", None)}, [b"n" * 12], TypeError),
        (b"0" * 64, {"p:0000": (_KEY, "not bytes", None)}, [b"n" * 12], TypeError),
        (b"0" * 64, {"p:0000": (_KEY, b"sk:00", "7")}, [b"n" * 12], TypeError),
        (b"0" * 64, {"p:0000": _GOOD_SEAL}, [], TypeError),
        (b"0" * 64, {"p:0000": _GOOD_SEAL}, [b"short"], TypeError),
        (b"0" * 64, {"someone else": _GOOD_SEAL}, [b"n" * 12], KeyError),
        (b"0" * 64, {"p:0000": _GOOD_SEAL}, 5, TypeError),
    ],
)
def test_the_c_encoder_refuses_bad_arguments_with_an_exception(
    prev: bytes, seals: Any, nonces: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _c_encoder().encode([make_record(0)], 0, prev, 1 << 30, seals, nonces)


@needs_native
@pytest.mark.parametrize("refs", [[], [b"rr:00"], 5, [b"rr:00", "not bytes"]])
def test_the_c_encoder_refuses_record_references_that_do_not_fit(refs: Any) -> None:
    chunk = [make_record(0, subject="p:0000"), make_record(1, subject="p:0000")]
    with pytest.raises(TypeError):
        _c_encoder().encode(
            chunk, 0, b"0" * 64, 1 << 30, {"p:0000": _GOOD_SEAL}, [b"n" * 12] * 2, refs
        )


@needs_native
def test_a_c_encoder_is_configured_once_and_refuses_to_encode_unconfigured() -> None:
    from kzai_guard.audit import _lines

    names = _NAMES
    encoder = _lines.Encoder(names, (), b"")
    with pytest.raises(TypeError, match="configured once"):
        encoder.__init__(names, (), b"")  # type: ignore[misc]
    half = _lines.Encoder.__new__(_lines.Encoder)
    with pytest.raises(ValueError, match="no subject"):
        half.__init__(("id",), (), b"")  # type: ignore[misc]
    with pytest.raises(TypeError, match="must be str"):
        half.__init__((*names, 7), ("id",), b"")  # type: ignore[misc, arg-type]
    with pytest.raises(TypeError, match="not configured"):
        half.encode([make_record(0)], 0, b"0" * 64, 1 << 30, None, [])


class _Fields:
    """A record read by name: its fields in a ``__dict__``, not in slots."""

    def __init__(self, record: AuditRecord) -> None:
        for f in dataclasses.fields(AuditRecord):
            setattr(self, f.name, getattr(record, f.name))


class _Renamed(AuditRecord):
    """A slotted record whose own ``__getattribute__`` decides what its fields read."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        return f"{value}!" if name == "detail" and isinstance(value, str) else value


def _python_lines(chunk: list[AuditRecord]) -> tuple[list[bytes], list[bytes], int]:
    return LineEncoder(None, native=False)._python_chunk(chunk, 0, b"0" * 64, 1 << 30, None, [], [])


def _c_lines(chunk: list[Any]) -> tuple[list[bytes], list[bytes], int]:
    return _c_encoder().encode(chunk, 0, b"0" * 64, 1 << 30, None, [])  # type: ignore[no-any-return]


@needs_native
@given(st.lists(records(), min_size=1, max_size=6), st.data())
def test_records_of_any_type_in_one_chunk_are_read_as_by_name(
    chunk: list[AuditRecord], data: st.DataObject
) -> None:
    # slotted records are read from their slots; a chunk that mixes in others reads those by name
    mixed = [data.draw(st.sampled_from([r, _Fields(r)])) for r in chunk]
    expected = LineEncoder(None, native=False)._python_chunk(
        chunk, 0, b"0" * 64, 1 << 30, None, [], []
    )
    assert _c_lines(mixed) == expected
    assert _c_lines([_Fields(r) for r in chunk]) == expected


@needs_native
def test_a_type_that_reads_its_own_attributes_is_read_by_name() -> None:
    record = make_record(0, detail="as given")
    expected = LineEncoder(None, native=False)._python_chunk(
        [make_record(0, detail="as given!")], 0, b"0" * 64, 1 << 30, None, [], []
    )
    renamed = _Renamed(*(getattr(record, f.name) for f in dataclasses.fields(AuditRecord)))
    assert _c_lines([renamed]) == expected


@needs_native
def test_a_record_with_an_empty_slot_raises_attribute_error_as_by_name() -> None:
    emptied = make_record(1)
    del emptied.detail
    for chunk in ([emptied], [make_record(0), emptied]):
        with pytest.raises(AttributeError):
            _c_lines(chunk)
    with pytest.raises(AttributeError):
        LineEncoder(None, native=False).encode([emptied], 0, b"0" * 64, 1 << 30)


@needs_native
@pytest.mark.parametrize("value", [0, -1, 9, 10, -10, 2**63 - 1, -(2**63), 10**18, -(10**18)])
def test_integers_are_written_as_python_writes_them(value: int) -> None:
    chunk = [make_record(0, latency_us=value, time=value)]
    python = LineEncoder(None, native=False)._python_chunk(
        chunk, 0, b"0" * 64, 1 << 30, None, [], []
    )
    assert _c_lines(chunk) == python


@pytest.mark.parametrize("native", [False, pytest.param(True, marks=needs_native)])
@pytest.mark.parametrize("log_format", FORMATS)
def test_bodies_chained_later_are_the_lines_encoded_in_place(native: bool, log_format: int) -> None:
    # more than one chunk of records, refused ones among them, and a room that cuts the batch
    batch = [make_record(i, subject=f"p:{i % 7}") for i in range(600)] + _REFUSED
    encoder = LineEncoder(None, native=native, leaf_format=log_format)
    prev = b"ab" * 32
    expected = encoder.encode(batch, 123_456, prev, 1 << 30)
    assert chain(encoder.bodies(batch), 123_456, prev, 1 << 30, log_format) == expected
    cut = chain(encoder.bodies(batch), 7, prev, 10_000, log_format)
    assert cut == encoder.encode(batch, 7, prev, 10_000)
    assert 0 < len(cut[0]) < len(batch)


@pytest.mark.parametrize("native", [False, pytest.param(True, marks=needs_native)])
def test_sealed_bodies_chained_later_unseal_as_the_lines_encoded_in_place(native: bool) -> None:
    batch = [make_record(i, subject=f"p:{i % 7}", detail=f"d{i}") for i in range(300)]
    keys = MemorySubjectKeys()
    encoder = LineEncoder(Sealer(keys), native=native)
    lines = chain(encoder.bodies(batch), 5, b"0" * 64, 1 << 30)[0]
    in_place = encoder.encode(batch, 5, b"0" * 64, 1 << 30)[0]
    assert [orjson.loads(line)["seq"] for line in lines] == list(range(5, 305))
    for chained, encoded in zip(lines, in_place, strict=True):
        assert _readable(chained, keys) == _readable(encoded, keys)


_LAST_SEQ = 2**63 - 1
_seqs = st.one_of(
    st.integers(min_value=-(2**63), max_value=_LAST_SEQ),
    st.sampled_from([0, 9, 10, 99, 100, -1, -10, _LAST_SEQ, _LAST_SEQ - 1, _LAST_SEQ - 5]),
)
_prevs = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(str.encode)


@needs_native
@given(
    st.lists(records(), min_size=1, max_size=12),
    st.sampled_from(["clear", "sealed", "numbered", "owner-ref"]),
)
def test_c_bodies_are_the_python_bodies_and_the_c_lines_cut(
    chunk: list[AuditRecord], how: str
) -> None:
    keys = _UnindexedKeys() if how in ("numbered", "owner-ref") else MemorySubjectKeys()
    sealer = None if how == "clear" else Sealer(keys)
    python = LineEncoder(sealer, native=False)
    seals, nonces, refs = python._seals(chunk)
    if how == "numbered" and seals:
        seals = {owner: (s[0], s[1], 40 + i, *s[3:]) for i, (owner, s) in enumerate(seals.items())}
    given_refs = None if how in ("numbered", "owner-ref") else refs
    expected = python._bodies(chunk, seals, nonces, refs)
    encoder = _c_encoder()
    assert encoder.bodies(chunk, seals, nonces, given_refs) == expected
    # the bodies the log was written with so far: cut from lines after 64 zeros, from seq 0
    lines = encoder.encode(chunk, 0, b"0" * 64, 1 << 62, seals, nonces, given_refs)[0]
    assert [line[73 : -len(b"%d}" % i)] for i, line in enumerate(lines)] == expected


@needs_native
@given(
    st.lists(st.binary(max_size=300), max_size=12),
    _seqs,
    _prevs,
    st.integers(min_value=-10, max_value=4000),
    st.sampled_from(FORMATS),
)
def test_c_and_python_chains_are_the_same_bytes(
    bodies: list[bytes], seq: int, prev: bytes, room: int, log_format: int
) -> None:
    from kzai_guard.audit import _lines

    expected = _python_chain(bodies, seq, prev, room, log_format)
    assert chain(bodies, seq, prev, room, log_format) == expected
    try:
        got = _lines.chain(bodies, seq, prev, room, log_format)
    except OverflowError:
        # only where a line's seq would be past 64 bits (chain() then uses the Python twin)
        assert seq + len(expected[0]) - 1 > _LAST_SEQ
    else:
        assert got == expected
    assert expected[2] == sum(len(line) + 1 for line in expected[0])


@needs_native
@pytest.mark.parametrize("log_format", FORMATS)
def test_the_c_chain_stops_after_the_line_that_fills_the_room(log_format: int) -> None:
    from kzai_guard.audit import _lines

    bodies = [b'","rec":{"id":"x"},"seq":'] * 5
    line_size = len(_python_chain(bodies[:1], 10, b"0" * 64, 1 << 30)[0][0]) + 1
    for room, count in [
        (-1, 1),
        (0, 1),
        (1, 1),
        (line_size, 1),
        (line_size + 1, 2),
        (3 * line_size, 3),
        (1 << 30, 5),
    ]:
        lines, hashes, size = _lines.chain(bodies, 10, b"0" * 64, room, log_format)
        assert (len(lines), len(hashes), size) == (count, count, count * line_size)
        assert hashes == [leaf_of(log_format, line) for line in lines]
    assert _lines.chain([], 0, b"0" * 64, 0, log_format) == ([], [], 0)


def test_chain_past_64_bit_sequence_numbers_is_the_python_chain() -> None:
    bodies = [b'","rec":{},"seq":'] * 3
    expected = _python_chain(bodies, _LAST_SEQ - 1, b"f" * 64, 1 << 30)
    assert [orjson.loads(line)["seq"] for line in expected[0]] == [
        _LAST_SEQ - 1,
        _LAST_SEQ,
        _LAST_SEQ + 1,
    ]
    assert chain(bodies, _LAST_SEQ - 1, b"f" * 64, 1 << 30) == expected
    assert chain(bodies, 2**70, b"f" * 64, 1 << 30) == _python_chain(
        bodies, 2**70, b"f" * 64, 1 << 30
    )


@needs_native
@pytest.mark.parametrize(
    ("bodies", "prev", "leaf_format", "error"),
    [
        ([b"x"], b"0" * 63, 1, ValueError),
        ([b"x"], b"0" * 64, 3, ValueError),
        ([b"x", "not bytes"], b"0" * 64, 1, TypeError),
        ([bytearray(b"x")], b"0" * 64, 1, TypeError),
        (5, b"0" * 64, 1, TypeError),
    ],
)
def test_the_c_chain_refuses_bad_arguments_with_an_exception(
    bodies: Any, prev: bytes, leaf_format: int, error: type[Exception]
) -> None:
    from kzai_guard.audit import _lines

    with pytest.raises(error):
        _lines.chain(bodies, 0, prev, 1 << 30, leaf_format)


@needs_native
def test_the_c_bodies_refuse_what_the_python_encoder_owns() -> None:
    for record in _REFUSED:
        with pytest.raises((TypeError, ValueError, OverflowError)):
            _c_encoder().bodies([make_record(0), record], None, [])


_owner_ids = st.tuples(
    st.one_of(st.none(), st.sampled_from(["p:0", "p:1", "r:2"])),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
)


@needs_native
@given(st.lists(_owner_ids, max_size=12), st.booleans())
def test_c_and_python_record_references_are_the_same(
    pairs: list[tuple[str | None, str]], indexed: bool
) -> None:
    from kzai_guard.audit import _lines

    sealer = Sealer(MemorySubjectKeys() if indexed else _UnindexedKeys())
    seals = sealer.for_batch(owner for owner, _ in pairs if owner is not None)
    expected = sealer._python_record_refs(pairs, seals)
    assert _lines.record_refs(pairs, seals) == expected
    assert sealer.record_refs(iter(pairs), seals) == expected[0]
    # an owner's own reference where the store keeps no index, else one per record
    assert len(expected[1]) == (sum(owner is not None for owner, _ in pairs) if indexed else 0)


@needs_native
def test_record_references_the_c_encoder_refuses_are_made_in_python() -> None:
    from kzai_guard.audit import _lines

    keys = MemorySubjectKeys()
    sealer = Sealer(keys)
    seals = sealer.for_batch(["p:0"])
    expected = sealer._python_record_refs([("p:0", "dec-1")], seals)
    for refused in ([["p:0", "dec-1"]], [("p:0", 1)], [("p:0",)]):
        with pytest.raises(TypeError):
            _lines.record_refs(refused, seals)
    assert sealer.record_refs([["p:0", "dec-1"]], seals) == expected[0]  # type: ignore[list-item]
    assert keys.record_key(expected[0][0].decode()) == keys.key_for(seals["p:0"][1].decode())
    with pytest.raises(KeyError):
        _lines.record_refs([("someone else", "dec-1")], seals)
    with pytest.raises(UnicodeEncodeError):
        _lines.record_refs([("p:0", "dec-\ud800")], seals)


@needs_native
def test_runs_of_one_owners_records_are_sealed_as_the_python_encoder_seals_them() -> None:
    # the C encoder sets a key up once for a run of records under it: runs and switches
    owners = ["p:a", "p:a", "p:b", "p:b", "p:a", None, "p:a", "p:c", "p:a"]
    chunk = [make_record(i, subject=owner) for i, owner in enumerate(owners)]
    python = LineEncoder(Sealer(MemorySubjectKeys()), native=False)
    seals, nonces, refs = python._seals(chunk)
    expected = python._bodies(chunk, seals, nonces, refs)
    assert _c_encoder().bodies(chunk, seals, nonces, refs) == expected
    assert len(set(expected)) == len(chunk)
