"""The witness's decisions: every status of C2SP tlog-witness, and no two inconsistent cosigns."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from kzai_guard.audit.checkpoint import Checkpoint
from kzai_guard.audit.cosignature import Cosigner
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.witness.protocol import AddCheckpoint, encode_add_checkpoint, parse_add_checkpoint
from kzai_guard.witness.state import LogState, judge

from .helpers import mth, proof, signed

ORIGIN = "example.com/audit"
SIGNER = Signer.generate("log-key")
LOGS = {ORIGIN: Keyring([SIGNER.public_key])}
WITNESS = Cosigner.generate("w.example/1")
LEAVES = [b"record %d" % i for i in range(40)]


def _state(n: int) -> LogState:
    return LogState(n, mth(LEAVES[:n]), "")


def _ask(leaves: list[bytes], old: int, current: LogState | None, **kw: object) -> tuple[int, str]:
    note = kw.get("note") or signed(SIGNER, ORIGIN, leaves).note()
    hashes = kw.get("proof", proof(leaves, old) if 0 < old < len(leaves) else [])
    request = AddCheckpoint(old, tuple(hashes), str(note))  # type: ignore[arg-type]
    answer = judge(request, LOGS, current, WITNESS, 1000)
    return answer.status, answer.body


def test_first_checkpoint_is_cosigned_with_a_valid_cosignature() -> None:
    note = signed(SIGNER, ORIGIN, LEAVES[:10])
    answer = judge(AddCheckpoint(0, (), note.note()), LOGS, None, WITNESS, 1000)
    assert answer.status == 200
    assert answer.cosigned == LogState(10, note.checkpoint.root, answer.cosigned.note)  # type: ignore[union-attr]
    cosigned = note.with_signatures([WITNESS.cosign(note.checkpoint, 1000)])
    assert answer.body == cosigned.signature_lines().splitlines(keepends=True)[1]
    assert WITNESS.public_key.cosigned(note.with_signatures([])) is None


def test_consistent_growth_is_cosigned() -> None:
    assert _ask(LEAVES[:25], 10, _state(10))[0] == 200


def test_unknown_origin_is_404_and_untrusted_signature_403() -> None:
    other = Checkpoint("other.example/log", 3, mth(LEAVES[:3])).sign([SIGNER]).note()
    assert _ask(LEAVES[:3], 0, None, note=other)[0] == 404
    stranger = signed(Signer.generate("log-key"), ORIGIN, LEAVES[:3]).note()
    assert _ask(LEAVES[:3], 0, None, note=stranger)[0] == 403


def test_forged_signature_by_the_trusted_key_name_is_403() -> None:
    note = signed(SIGNER, ORIGIN, LEAVES[:3])
    name, kid, _sig = note.signatures[0]
    bad = type(note)(note.checkpoint, ((name, kid, bytes(64)),)).note()
    assert _ask(LEAVES[:3], 0, None, note=bad)[0] == 403


def test_stale_old_size_is_409_with_the_held_size() -> None:
    assert _ask(LEAVES[:25], 5, _state(10)) == (409, "10\n")
    assert _ask(LEAVES[:25], 0, _state(10)) == (409, "10\n")


def test_old_size_beyond_the_checkpoint_is_400() -> None:
    assert _ask(LEAVES[:5], 10, _state(10))[0] == 400


def test_split_view_same_size_other_root_is_422() -> None:
    fork = [*LEAVES[:9], b"forged"]
    assert _ask(fork, 10, _state(10))[0] == 422


def test_inconsistent_newer_checkpoint_is_422() -> None:
    fork = [*LEAVES[:7], b"forged", *LEAVES[8:20]]
    assert _ask(fork, 10, _state(10))[0] == 422
    # a proof made for the honest tree does not rescue it
    assert _ask(fork, 10, _state(10), proof=proof(LEAVES[:20], 10))[0] == 422


def test_proof_from_size_zero_and_bad_empty_root_are_422() -> None:
    assert _ask(LEAVES[:5], 0, None, proof=[hashlib.sha256(b"x").digest()])[0] == 422
    bad_empty = Checkpoint(ORIGIN, 0, hashlib.sha256(b"x").digest()).sign([SIGNER]).note()
    assert _ask([], 0, None, note=bad_empty)[0] == 422


def test_request_body_round_trips_and_rejects_malformed() -> None:
    note = signed(SIGNER, ORIGIN, LEAVES[:9]).note()
    hashes = proof(LEAVES[:9], 4)
    body = encode_add_checkpoint(4, hashes, note)
    assert body.startswith(b"old 4\n")
    assert parse_add_checkpoint(body) == AddCheckpoint(4, tuple(hashes), note)
    for bad in (b"old 04\n\n" + note.encode(), b"old 4\nnot base64\n\n", b"new 4\n\n", b"old 4"):
        try:
            parse_add_checkpoint(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


_submission = st.tuples(
    st.sampled_from(["main", "fork"]),
    st.integers(0, 40),
    st.sampled_from(["held", "random"]),
    st.integers(0, 40),
    st.sampled_from(["honest", "garbage", "other-history"]),
)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 39), st.lists(_submission, min_size=1, max_size=25))
def test_random_submissions_never_get_two_inconsistent_checkpoints_cosigned(
    fork_at: int, submissions: list[tuple[str, int, str, int, str]]
) -> None:
    histories = {"main": LEAVES, "fork": LEAVES[:fork_at] + [b"fork %d" % i for i in range(40)]}
    current: LogState | None = None
    cosigned: list[tuple[str, int]] = []
    for history, size, old_kind, old_random, proof_kind in submissions:
        leaves = histories[history][:size]
        old = (current.size if current else 0) if old_kind == "held" else old_random
        if proof_kind == "honest" and 0 < old < size:
            hashes = proof(leaves, old)
        elif proof_kind == "other-history" and 0 < old < size:
            other = histories["fork" if history == "main" else "main"][:size]
            hashes = proof(other, old)
        elif proof_kind == "garbage":
            hashes = [hashlib.sha256(b"%d" % i).digest() for i in range(old % 5)]
        else:
            hashes = []
        note = signed(SIGNER, ORIGIN, leaves).note()
        answer = judge(AddCheckpoint(old, tuple(hashes), note), LOGS, current, WITNESS, 1)
        if answer.status == 200:
            assert answer.cosigned is not None
            assert current is None or answer.cosigned.size >= current.size
            current = answer.cosigned
            cosigned.append((history, size))
        else:
            assert answer.cosigned is None
    # any two cosigned checkpoints: the smaller is a prefix of the larger
    for h1, s1 in cosigned:
        for h2, s2 in cosigned:
            small, large = sorted([(s1, h1), (s2, h2)])
            assert histories[large[1]][: small[0]] == histories[small[1]][: small[0]]
