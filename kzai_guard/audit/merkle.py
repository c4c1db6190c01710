"""RFC 9162 Merkle trees: hashes, the incremental right edge, inclusion and consistency proofs.

Pure functions and one small class, no I/O. The tree over entries ``D[0:n]`` is defined as in
RFC 9162 section 2.1.1: ``MTH({}) = SHA-256()``, ``MTH({d}) = SHA-256(0x00 || d)``, and for
``n > 1`` with ``k`` the largest power of two strictly below ``n``,
``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

Proof *generation* takes a callable ``subtree(start, end) -> bytes`` giving ``MTH(D[start:end])``
for the ranges the RFC recursion asks for; the log answers it from stored per-level hashes in
O(log n) reads (:mod:`kzai_guard.audit.tree`). Proof *verification* follows the iterative
algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "split_point",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree."""

_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right edge of a growing tree: one hash per set bit of its size.

    ``hashes[i]`` is the root of the ``i``-th complete subtree from the left; their sizes are the
    set bits of :attr:`size`, largest first. Appending is O(1) amortised and the root costs one
    node hash per set bit. ``on_node(level, hash)`` is told of every complete subtree of
    ``2**level`` leaves (level 1 upwards) the moment it closes, so a caller can persist it.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a range of size {size} needs {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes, on_node: Callable[[int, bytes], None] | None = None) -> None:
        """Add one leaf hash."""
        stack = self.hashes
        stack.append(leaf)
        n = self.size
        level = 0
        while n & 1:
            right = stack.pop()
            node = _sha256(b"\x01" + stack.pop() + right).digest()
            stack.append(node)
            level += 1
            if on_node is not None:
                on_node(level, node)
            n >>= 1
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> list[list[bytes]]:
        """Add many leaf hashes; returns the subtrees they complete, level by level.

        ``result[i]`` lists, in order, the roots of the complete subtrees of ``2**(i + 1)``
        leaves closed by this call (what :meth:`append` reports through ``on_node``). The
        tree is built a level at a time, pairing all nodes of a level in one pass: no Python
        loop per leaf, only one comprehension per level.
        """
        stack = self.hashes
        n = self.size
        self.size += len(leaves)
        pairs = _pairs
        nodes = list(leaves)
        closed: list[list[bytes]] = []
        leftover: list[bytes] = []
        while nodes:
            if n & 1:
                # the rightmost complete subtree of this level is the left sibling
                nodes = [stack.pop(), *nodes]
                n -= 1
            if len(nodes) & 1:
                leftover.append(nodes[-1])
                nodes = nodes[:-1]
            n >>= 1
            if not nodes:
                break
            sha = _sha256
            nodes = [sha(b"\x01" + left + right).digest() for left, right in pairs(nodes)]
            closed.append(nodes)
        stack.extend(reversed(leftover))
        return closed

    def root(self) -> bytes:
        """``MTH`` of the leaves appended so far."""
        stack = self.hashes
        if not stack:
            return EMPTY_ROOT
        root = stack[-1]
        for h in reversed(stack[:-1]):
            root = _sha256(b"\x01" + h + root).digest()
        return root

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self.size, self.hashes)


def _pairs(nodes: list[bytes]) -> zip[tuple[bytes, bytes]]:
    return zip(nodes[::2], nodes[1::2], strict=True)


def inclusion_proof(index: int, size: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """The audit path ``PATH(index, D[0:size])`` of RFC 9162 section 2.1.3.1."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index - start < k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(old: int, new: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """``PROOF(old, D[0:new])`` of RFC 9162 section 2.1.4.1."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, new, old, True
    while True:
        if m == end - start:
            if not complete:
                proof.append(subtree(start, end))
            break
        k = split_point(end - start)
        if m <= k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); ``ValueError`` if malformed."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """True if ``path`` proves leaf hash ``leaf`` is entry ``index`` of the tree with ``root``."""
    try:
        return root_from_inclusion(index, size, leaf, path) == root
    except ValueError:
        return False


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if ``proof`` shows the tree ``(new, new_root)`` extends ``(old, old_root)``.

    RFC 9162 section 2.1.4.2; sizes equal need an empty proof and equal roots, size 0 is
    consistent with everything.
    """
    if not 0 <= old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
