"""RFC 9162 Merkle trees: published test vectors, a recursive oracle and pymerkle agree.

The vectors are the RFC 6962/9162 reference data used by certificate-transparency and
transparency-dev/merkle (``proof/verify_test.go``): eight leaves, the root of every prefix, and
known inclusion and consistency proofs.
"""

from __future__ import annotations

import hashlib
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kzai_guard.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (1-based leaf, tree size, audit path)
INCLUSION = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def oracle_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 section 2.1.1 (recursive, leaf inputs)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + oracle_root(leaves[:k]) + oracle_root(leaves[k:])).digest()


def _hashes(entries: list[bytes]) -> list[bytes]:
    return [leaf_hash(e) for e in entries]


def _subtree(entries: list[bytes]):  # type: ignore[no-untyped-def]
    return lambda start, end: oracle_root(entries[start:end])


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert CompactRange().root().hex() == ROOTS[0]


@pytest.mark.parametrize("size", range(1, 9))
def test_compact_range_root_matches_reference_vectors(size: int) -> None:
    tree = CompactRange()
    for h in _hashes(LEAVES[:size]):
        tree.append(h)
    assert tree.root().hex() == ROOTS[size]


@pytest.mark.parametrize(("leaf", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_reference_vectors(leaf: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(leaf - 1, size, _subtree(LEAVES))
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(ROOTS[size])
    hashes = [bytes.fromhex(p) for p in path]
    assert verify_inclusion(leaf - 1, size, leaf_hash(LEAVES[leaf - 1]), hashes, root)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_reference_vectors(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(old, new, _subtree(LEAVES))
    assert [p.hex() for p in proof] == path
    hashes = [bytes.fromhex(p) for p in path]
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, hashes)


def test_every_inclusion_proof_verifies_and_every_corruption_fails() -> None:
    entries = [bytes([i, i * 7 % 256]) for i in range(40)]
    for size in range(1, len(entries) + 1):
        root = oracle_root(entries[:size])
        for index in range(size):
            leaf = leaf_hash(entries[index])
            path = inclusion_proof(index, size, _subtree(entries))
            assert verify_inclusion(index, size, leaf, path, root)
            assert not verify_inclusion(index, size, leaf, [*path, root], root)
            assert not verify_inclusion(index, size * 2, leaf, path, root)
            assert not verify_inclusion(index, size, leaf_hash(b"wrong"), path, root)
            if index + 1 < size:
                assert not verify_inclusion(index + 1, size, leaf, path, root)
            for i in range(len(path)):
                bad = list(path)
                bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
                assert not verify_inclusion(index, size, leaf, bad, root)
            if path:
                assert not verify_inclusion(index, size, leaf, path[:-1], root)


def test_every_consistency_proof_verifies_and_every_corruption_fails() -> None:
    entries = [bytes([i]) for i in range(34)]
    roots = [oracle_root(entries[:n]) for n in range(len(entries) + 1)]
    for new in range(len(entries) + 1):
        for old in range(new + 1):
            proof = consistency_proof(old, new, _subtree(entries))
            assert verify_consistency(old, new, roots[old], roots[new], proof)
            if not proof:
                continue
            assert not verify_consistency(old, new, roots[new], roots[old], proof)
            assert not verify_consistency(old, new, roots[old], roots[new], [])
            assert not verify_consistency(old, new, roots[old], roots[new], proof[:-1])
            assert not verify_consistency(old, new, roots[old], roots[new], [*proof, roots[old]])
            if old + 1 < new:
                assert not verify_consistency(old + 1, new, roots[old], roots[new], proof)
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
                assert not verify_consistency(old, new, roots[old], roots[new], bad)


def test_consistency_rejects_time_travel() -> None:
    assert not verify_consistency(2, 1, EMPTY_ROOT, EMPTY_ROOT, [])


def test_root_from_inclusion_rejects_index_outside_tree() -> None:
    with pytest.raises(ValueError, match="not in a tree of size 3"):
        root_from_inclusion(3, 3, EMPTY_ROOT, [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=150))
def test_compact_range_agrees_with_recursive_oracle_and_reports_every_node(
    entries: list[bytes],
) -> None:
    tree = CompactRange()
    nodes: dict[int, list[bytes]] = {}
    for i, h in enumerate(_hashes(entries)):
        tree.append(h, lambda level, node: nodes.setdefault(level, []).append(node))
        assert tree.root() == oracle_root(entries[: i + 1])
    for level, hashes in nodes.items():
        width = 1 << level
        expected = [oracle_root(entries[j * width : (j + 1) * width]) for j in range(len(hashes))]
        assert hashes == expected
        assert len(hashes) == len(entries) >> level


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=16), min_size=1, max_size=120), st.data())
def test_agrees_with_pymerkle(entries: list[bytes], data: st.DataObject) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pymerkle import InmemoryTree
        from pymerkle import verify_inclusion as pm_verify_inclusion

        reference = InmemoryTree(algorithm="sha256")
        for entry in entries:
            reference.append_entry(entry)
        tree = CompactRange()
        for i, h in enumerate(_hashes(entries)):
            tree.append(h)
            assert reference.get_root(i + 1) == tree.root()
        size = len(entries)
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        ours = inclusion_proof(index, size, _subtree(entries))
        assert verify_inclusion(index, size, leaf_hash(entries[index]), ours, reference.get_root())
        theirs = reference.prove_inclusion(index + 1, size)
        pm_verify_inclusion(reference.get_leaf(index + 1), tree.root(), theirs)


def test_node_hash_is_sha256_of_prefix_left_right() -> None:
    left, right = b"\x01" * 32, b"\x02" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=8), max_size=40), max_size=8))
def test_extend_equals_appending_one_leaf_at_a_time(batches: list[list[bytes]]) -> None:
    one, many = CompactRange(), CompactRange()
    reported: dict[int, list[bytes]] = {}
    closed: dict[int, list[bytes]] = {}
    for batch in batches:
        leaves = _hashes(batch)
        for leaf in leaves:
            one.append(leaf, lambda level, node: reported.setdefault(level, []).append(node))
        for level, nodes in enumerate(many.extend(leaves), 1):
            closed.setdefault(level, []).extend(nodes)
        assert (many.size, many.hashes, many.root()) == (one.size, one.hashes, one.root())
    assert {k: v for k, v in closed.items() if v} == reported
