"""Damaged or hostile input to the audit log's parsers: a result or the documented error.

Checkpoint notes, proof bundles, public and private keys, and the ``origin`` and ``anchor.json``
files of an audit directory are read from places a user or an attacker can write. Whatever
they hold, each parser returns a well-formed value or raises the error it documents; a changed
checkpoint or bundle is never accepted.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kzai_guard.audit.checkpoint import (
    Checkpoint,
    CheckpointStatus,
    SignedCheckpoint,
    parse_notes,
    read_notes,
)
from kzai_guard.audit.keys import Keyring, PublicKey, Signer, load_public_key
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.proof import (
    CONSISTENCY_FORMAT,
    INCLUSION_FORMAT,
    ProofCheck,
    consistency_bundle,
    inclusion_bundle,
    verify_bundle,
)
from kzai_guard.audit.segments import ANCHOR_FILE, ORIGIN_FILE, Anchor, read_anchor, read_origin
from kzai_guard.errors import AuditLogError, ConfigurationError
from tests.audit.conftest import make_record
from tests.strategies import json_values

SIGNER = Signer.generate("test-key")
KEYRING = Keyring([SIGNER.public_key])
ROOT = bytes(range(32))
NOTE = Checkpoint("example.org/log", 42, ROOT).sign([SIGNER])

JSON_VALUES = json_values(
    "",
    "0",
    "-1",
    INCLUSION_FORMAT,
    CONSISTENCY_FORMAT,
    NOTE.note(),
    text_size=20,
    max_size=4,
    max_leaves=12,
)
"""What ``json.loads`` (which ``kzai-guard verify-proof`` uses) can give."""
FIXTURES = [HealthCheck.function_scoped_fixture]
FLIPS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4)
KEY_NAMES = st.text(
    st.characters(exclude_categories=("Z", "C", "Cs")), min_size=1, max_size=20
).filter(lambda name: "+" not in name and not any(c.isspace() for c in name))


def flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, mask in flips:
        out[position % len(out)] ^= mask
    return bytes(out)


def assert_value_error(exc: BaseException) -> None:
    """The parsers promise ``ValueError`` (``ConfigurationError`` is one), not a decoding crash."""
    assert isinstance(exc, ValueError) and not isinstance(exc, UnicodeError), repr(exc)


# -- checkpoints -------------------------------------------------------------------------------


NOTE_LIKE = st.lists(
    st.sampled_from(["", "o", "42", "0", "007", "\u2014", "\u2014 k AAAAAAAA", " ", "\n"])
    | st.text(max_size=12)
    | st.just(base64.b64encode(ROOT).decode()),
    max_size=8,
).map("\n".join)


@settings(max_examples=300)
@given(text=st.text() | NOTE_LIKE)
def test_any_text_is_a_signed_checkpoint_or_a_value_error(text: str) -> None:
    try:
        note = SignedCheckpoint.parse(text)
    except Exception as exc:
        assert_value_error(exc)
        return
    assert note.signatures
    assert note.checkpoint.body().decode() == text.partition("\n\n")[0] + "\n"


@given(
    origin=st.text(min_size=1).filter(lambda o: "\n" not in o),
    size=st.integers(0, 2**64),
    root=st.binary(min_size=32, max_size=32),
    signatures=st.lists(
        st.tuples(KEY_NAMES, st.binary(min_size=4, max_size=4), st.binary(min_size=1)),
        min_size=1,
        max_size=3,
    ),
)
def test_a_signed_checkpoint_round_trips_through_its_note(
    origin: str, size: int, root: bytes, signatures: list[tuple[str, bytes, bytes]]
) -> None:
    signed = SignedCheckpoint(Checkpoint(origin, size, root), tuple(signatures))
    assert SignedCheckpoint.parse(signed.note()) == signed


@settings(max_examples=300)
@given(flips=FLIPS)
def test_a_note_with_flipped_bytes_verifies_only_if_it_still_says_the_same(
    flips: list[tuple[int, int]],
) -> None:
    text = flip(NOTE.note().encode(), flips).decode("utf-8", errors="replace")
    try:
        parsed = SignedCheckpoint.parse(text)
    except ValueError:
        return
    if parsed.status(KEYRING) is CheckpointStatus.VALID:
        assert parsed == NOTE


@given(text=st.text() | st.lists(st.just(NOTE.note()) | st.text(max_size=30)).map("\n".join))
def test_parse_notes_of_any_text_yields_checkpoints_and_value_errors_only(text: str) -> None:
    for item in parse_notes(text):
        assert isinstance(item, SignedCheckpoint | ValueError)


@settings(max_examples=150, suppress_health_check=FIXTURES)
@given(data=st.binary() | FLIPS.map(lambda f: flip((NOTE.note() + "\n").encode() * 2, f)))
def test_read_notes_of_any_file_lists_checkpoints_and_value_errors_only(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "00000000000000000000.checkpoints"
    path.write_bytes(data)
    assert all(isinstance(item, SignedCheckpoint | ValueError) for item in read_notes(path))


def test_read_notes_of_well_formed_notes_gives_them_back(tmp_path: Path) -> None:
    other = Checkpoint("example.org/log", 43, bytes(32)).sign([SIGNER])
    path = tmp_path / "00000000000000000000.checkpoints"
    path.write_text(NOTE.note() + "\n" + other.note() + "\n")
    assert read_notes(path) == [NOTE, other]


# -- proof bundles -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """A real inclusion bundle (seq 5 of 20) and consistency bundle (7 to 20), both valid."""
    path = tmp_path_factory.mktemp("proofs") / "audit"
    log = AuditLog.open(path, signer=SIGNER, checkpoint_every=7)
    for i in range(20):
        log.write(make_record(i))
    log.close()
    made = {
        "inclusion": inclusion_bundle(path, seq=5),
        "consistency": consistency_bundle(path, 7),
    }
    assert all(verify_bundle(bundle, KEYRING).ok for bundle in made.values())
    return made


@settings(max_examples=200)
@given(value=JSON_VALUES)
def test_any_json_value_as_a_bundle_is_a_failed_check(value: Any) -> None:
    result = verify_bundle(value, KEYRING)
    assert isinstance(result, ProofCheck) and not result.ok


BUNDLE_FIELDS = [
    "format",
    "origin",
    "leaf_index",
    "tree_size",
    "entry",
    "leaf_hash",
    "audit_path",
    "root_hash",
    "old_size",
    "new_size",
    "old_root",
    "new_root",
    "proof",
    "old_checkpoint",
    "checkpoint",
]


@settings(max_examples=200)
@given(
    kind=st.sampled_from(["inclusion", "consistency"]),
    key=st.sampled_from(BUNDLE_FIELDS) | st.text(max_size=10),
    value=JSON_VALUES,
)
@example(kind="inclusion", key="leaf_index", value=math.inf)
def test_a_bundle_with_a_field_of_any_json_value_is_checked_without_crashing(
    bundles: dict[str, dict[str, Any]], kind: str, key: str, value: Any
) -> None:
    bundle = copy.deepcopy(bundles[kind])
    bundle[key] = value
    assert isinstance(verify_bundle(bundle, KEYRING), ProofCheck)


HASH_FIELDS = {"leaf_hash", "root_hash", "old_root", "new_root"}
NOTE_FIELDS = {"checkpoint", "old_checkpoint"}


def _changed(field: str, value: Any, data: st.DataObject) -> Any:
    """``value`` changed so that it says something else (not merely spelled differently)."""
    if isinstance(value, int):
        return data.draw(st.integers().filter(lambda n: n != value), label="integer")
    if field in HASH_FIELDS:
        raw = base64.b64decode(value)
        return base64.b64encode(flip(raw, [data.draw(FLIPS, label="flips")[0]])).decode()
    if isinstance(value, list):
        op = data.draw(st.sampled_from(["drop", "insert", "change"]), label="op")
        items = list(value)
        at = data.draw(st.integers(0, len(items)), label="at")
        if op == "drop" and items:
            del items[at % len(items)]
        elif op == "insert" or not items:
            extra = data.draw(st.binary(min_size=32, max_size=32), label="hash")
            items.insert(at, base64.b64encode(extra).decode())
        else:
            items[at % len(items)] = _changed("leaf_hash", items[at % len(items)], data)
        return items
    text = flip(value.encode(), [data.draw(FLIPS, label="flips")[0]]).decode(errors="replace")
    if field in NOTE_FIELDS:
        try:
            same = SignedCheckpoint.parse(text) == SignedCheckpoint.parse(value)
        except ValueError:
            same = False
        if same:
            # only the unused low bits of a base64 signature changed: the same note
            return _changed(field, value, data)
    return text


@settings(max_examples=300)
@given(kind=st.sampled_from(["inclusion", "consistency"]), data=st.data())
def test_a_bundle_changed_in_meaning_is_never_accepted(
    bundles: dict[str, dict[str, Any]], kind: str, data: st.DataObject
) -> None:
    bundle = copy.deepcopy(bundles[kind])
    key = data.draw(st.sampled_from(sorted(bundle)), label="field")
    bundle[key] = _changed(key, bundle[key], data)
    assert not verify_bundle(bundle, KEYRING).ok


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_a_bundle_missing_a_field_is_never_accepted(
    bundles: dict[str, dict[str, Any]], kind: str
) -> None:
    accepted = []
    for key in sorted(bundles[kind]):
        if key == "old_checkpoint":  # documented as optional ("<signed note>" | null)
            continue
        bundle = {k: v for k, v in bundles[kind].items() if k != key}
        if verify_bundle(bundle, KEYRING).ok:
            accepted.append(key)
    assert accepted == []


# -- keys --------------------------------------------------------------------------------------


def _vkey_parts() -> st.SearchStrategy[str]:
    key = base64.b64encode(b"\x01" + SIGNER.public_key.raw).decode()
    part = st.sampled_from(["test-key", SIGNER.key_id.hex(), key, "", "+"]) | st.text(max_size=12)
    return st.lists(part, max_size=4).map("+".join)


@settings(max_examples=300)
@given(text=st.text() | _vkey_parts())
def test_any_text_is_a_vkey_or_a_value_error(text: str) -> None:
    try:
        key = PublicKey.from_vkey(text)
    except Exception as exc:
        assert_value_error(exc)
        return
    assert PublicKey.from_vkey(key.vkey()) == key


@given(name=KEY_NAMES, raw=st.binary(min_size=32, max_size=32))
def test_a_public_key_round_trips_through_its_vkey(name: str, raw: bytes) -> None:
    key = PublicKey(name, raw)
    assert PublicKey.from_vkey(key.vkey()) == key


@settings(max_examples=300)
@given(flips=FLIPS)
def test_a_vkey_with_flipped_bytes_is_the_same_key_or_a_value_error(
    flips: list[tuple[int, int]],
) -> None:
    text = flip(SIGNER.public_key.vkey().encode(), flips).decode(errors="replace")
    try:
        key = PublicKey.from_vkey(text)
    except Exception as exc:
        assert_value_error(exc)
        return
    assert key == SIGNER.public_key


def _pem(key: Any, private: bool, password: bytes | None = None) -> bytes:
    if not private:
        return bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )


_KEYS = [Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), Ed448PrivateKey.generate()]
PUBLIC_PEMS = [_pem(k, private=False) for k in _KEYS]
PRIVATE_PEMS = [_pem(k, private=True) for k in _KEYS] + [
    _pem(_KEYS[0], private=True, password=b"secret")
]


def _mutated(pems: list[bytes]) -> st.SearchStrategy[bytes]:
    seeds = st.sampled_from(pems)
    return (
        st.binary()
        | seeds
        | st.tuples(seeds, FLIPS).map(lambda s: flip(*s))
        | st.tuples(seeds, st.integers(0, 400)).map(lambda s: s[0][: s[1]])
        | st.binary().map(lambda b: b"-----BEGIN PUBLIC KEY-----\n" + b)
    )


@settings(max_examples=200, suppress_health_check=FIXTURES)
@given(text=st.text(max_size=80) | _vkey_parts())
def test_load_public_key_of_any_text_is_a_key_or_a_value_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if text.startswith(("/", "~")) or ".." in text:
        return  # only names inside the temporary directory
    try:
        key = load_public_key(text)
    except Exception as exc:
        assert_value_error(exc)
        return
    assert isinstance(key, PublicKey)


@settings(max_examples=200, suppress_health_check=FIXTURES)
@given(data=_mutated(PUBLIC_PEMS) | _vkey_parts().map(str.encode))
def test_load_public_key_of_any_file_is_a_key_or_a_value_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "audit.pub"
    path.write_bytes(data)
    try:
        key = load_public_key(path)
    except Exception as exc:
        assert_value_error(exc)
        return
    assert isinstance(key, PublicKey)


def test_load_public_key_of_a_pem_file_that_is_not_ed25519_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.pub"
    path.write_bytes(PUBLIC_PEMS[1])
    with pytest.raises(ConfigurationError, match="not an Ed25519 public key"):
        load_public_key(path)


@settings(max_examples=200)
@given(pem=_mutated(PRIVATE_PEMS), name=KEY_NAMES | st.text(max_size=10))
@example(  # a truncated X448 key: OpenSSL reports an internal error
    pem=b"-----BEGIN PRIVATE KEY-----"
    b"MC4CAQAwBQYDK2VvBCIEIM+//0124444336BCEFHKKLPQRVVVbhj+++66ost55wz"
    b"-----END PRIVATE KEY-----",
    name="0",
)
def test_signer_from_any_pem_bytes_is_a_signer_or_a_value_error(pem: bytes, name: str) -> None:
    try:
        signer = Signer.from_pem(pem, name)
    except Exception as exc:
        assert_value_error(exc)
        return
    assert signer.public_key.verify(signer.sign(b"m"), b"m")


# -- origin and anchor files -------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=FIXTURES)
@given(data=st.binary() | st.text().map(str.encode))
def test_read_origin_of_any_file_is_text_none_or_an_audit_log_error(
    tmp_path: Path, data: bytes
) -> None:
    (tmp_path / ORIGIN_FILE).write_bytes(data)
    try:
        origin = read_origin(tmp_path)
    except AuditLogError:
        return
    assert origin is None or (origin and origin == origin.strip())


@settings(suppress_health_check=FIXTURES)
@given(
    origin=st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1)
    .map(str.strip)
    .filter(bool)
)
def test_an_origin_round_trips_through_its_file(tmp_path: Path, origin: str) -> None:
    (tmp_path / ORIGIN_FILE).write_text(origin + "\n")
    assert read_origin(tmp_path) == origin


ANCHOR_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "size": JSON_VALUES | st.integers(0, 2**40),
        "prev": JSON_VALUES | st.just("0" * 64),
        "range": JSON_VALUES | st.lists(st.binary(max_size=32).map(bytes.hex), max_size=3),
        "checkpoint": JSON_VALUES | st.just(NOTE.note()),
    },
)


@settings(max_examples=200, suppress_health_check=FIXTURES)
@given(
    data=st.binary()
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | ANCHOR_LIKE.map(lambda v: json.dumps(v).encode())
)
def test_read_anchor_of_any_file_is_an_anchor_none_or_an_audit_log_error(
    tmp_path: Path, data: bytes
) -> None:
    (tmp_path / ANCHOR_FILE).write_bytes(data)
    try:
        anchor = read_anchor(tmp_path)
    except AuditLogError:
        return
    assert anchor is None or isinstance(anchor, Anchor)


@settings(suppress_health_check=FIXTURES)
@given(
    size=st.integers(0, 2**63),
    prev=st.text(),
    hashes=st.lists(st.binary(min_size=32, max_size=32), max_size=5),
    checkpoint=st.text(),
)
def test_an_anchor_round_trips_through_anchor_json(
    tmp_path: Path, size: int, prev: str, hashes: list[bytes], checkpoint: str
) -> None:
    anchor = Anchor(size, prev, tuple(hashes), checkpoint)
    (tmp_path / ANCHOR_FILE).write_text(anchor.to_json())
    assert read_anchor(tmp_path) == anchor
