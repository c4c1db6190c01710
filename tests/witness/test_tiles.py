"""Tiles (C2SP tlog-tiles) checked by a client written here from the spec alone."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.merkle import verify_consistency
from kzai_guard.audit.proof import checkpoints
from kzai_guard.audit.tiles import tile_path
from kzai_guard.cli.main import main
from tests.audit.conftest import make_record

SIZE = 70_000


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class TileClient:
    """Reads hashes from a tlog-tiles directory for a tree of ``size`` leaves."""

    def __init__(self, root: Path, size: int) -> None:
        self.root, self.size = root, size

    def _path(self, level: int, n: int) -> Path:
        digits = f"{n:03d}"
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        name = "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])
        full = self.root / "tile" / str(level) / name
        width = (self.size // 256**level) - n * 256
        return full if width >= 256 else full.parent / f"{full.name}.p" / str(width)

    def tile_hash(self, level: int, index: int) -> bytes:
        data = self._path(level, index // 256).read_bytes()
        assert len(data) % 32 == 0
        return data[(index % 256) * 32 : (index % 256 + 1) * 32]

    def complete(self, height: int, index: int) -> bytes:
        """MTH of the complete subtree of 2**height leaves number ``index``."""
        level, rest = divmod(height, 8)
        nodes = [self.tile_hash(level, index * 2**rest + i) for i in range(2**rest)]
        while len(nodes) > 1:
            nodes = [_sha(b"\x01" + nodes[i] + nodes[i + 1]) for i in range(0, len(nodes), 2)]
        return nodes[0]

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) by RFC 6962 2.1's recursion, complete subtrees from the tiles."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self.complete(n.bit_length() - 1, start // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return _sha(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        """RFC 6962 2.1.1 PATH(m, D[start:end])."""
        n = end - start
        if n == 1:
            return []
        k = 1 << ((n - 1).bit_length() - 1)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        """RFC 6962 2.1.2 SUBPROOF(m, D[start:end], b)."""
        n = end - start
        if m == n:
            return [] if whole else [self.mth(start, end)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [*self.subproof(m, start, start + k, whole), self.mth(start + k, end)]
        return [*self.subproof(m - k, start + k, end, False), self.mth(start, start + k)]


def _root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    if size == 1:
        return leaf
    k = 1 << ((size - 1).bit_length() - 1)
    if index < k:
        return _sha(b"\x01" + _root_from_path(index, k, leaf, path[:-1]) + path[-1])
    return _sha(b"\x01" + path[-1] + _root_from_path(index - k, size - k, leaf, path[:-1]))


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Signer]:
    base = tmp_path_factory.mktemp("tiles")
    signer = Signer.generate("log-key")
    directory = base / "audit"
    log = AuditLog.open(
        directory,
        signer=signer,
        checkpoint_every=30_000,
        checkpoint_interval_ms=3_600_000,
        origin="t.example/l",
    )
    for i in range(SIZE):
        log.write(make_record(i))
    log.close()
    out = base / "public"
    assert main(["tiles", str(directory), str(out)]) == 0
    return directory, out, signer


def test_tile_paths_follow_the_spec() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 5, 17) == "tile/2/005.p/17"
    assert tile_path("commitments", 0, 256) == "tile/commitments/000"


def test_the_tiles_of_a_70000_leaf_tree_are_those_the_spec_lists(
    published: tuple[Path, Path, Signer],
) -> None:
    _, out, _ = published
    level0 = [p for p in (out / "tile" / "0").rglob("*") if p.is_file()]
    assert len(level0) == 274
    assert (out / "tile/0/273.p/112").stat().st_size == 112 * 32
    assert (out / "tile/1/000").stat().st_size == 8192
    assert (out / "tile/1/001.p/17").stat().st_size == 17 * 32
    assert (out / "tile/2/000.p/1").stat().st_size == 32
    assert not (out / "tile" / "entries").exists()


def test_inclusion_and_consistency_proofs_from_the_tiles(
    published: tuple[Path, Path, Signer],
) -> None:
    directory, out, signer = published
    note = SignedCheckpoint.parse((out / "checkpoint").read_text())
    body = note.checkpoint.body()
    name, kid, sig = note.signatures[0]
    assert (name, kid) == (signer.name, signer.key_id)
    signer.public_key.verify(sig, body)
    size, root = note.checkpoint.size, note.checkpoint.root
    assert size == SIZE
    client = TileClient(out, size)
    assert client.mth(0, size) == root
    line = (directory / "00000000000000000000.log").read_bytes().split(b"\n")[41_234]
    leaf = _sha(b"\x00" + line)
    path = client.path(41_234, 0, size)
    assert _root_from_path(41_234, size, leaf, path) == root
    old = next(n for n in checkpoints(directory) if n.checkpoint.size == 30_000)
    assert client.mth(0, 30_000) == old.checkpoint.root
    proof = client.subproof(30_000, 0, size, True)
    assert verify_consistency(30_000, size, old.checkpoint.root, root, proof)


def test_commitment_bundles_hold_leaf_hashes_and_no_record(
    published: tuple[Path, Path, Signer],
) -> None:
    directory, out, _ = published
    bundle = (out / "tile/commitments/001").read_bytes()
    tile = (out / "tile/0/001").read_bytes()
    entries = [bundle[i + 2 : i + 34] for i in range(0, len(bundle), 34)]
    assert all(bundle[i : i + 2] == b"\x00\x20" for i in range(0, len(bundle), 34))
    assert b"".join(entries) == tile
    line = (directory / "00000000000000000000.log").read_bytes().split(b"\n")[256]
    assert entries[0] == _sha(b"\x00" + line)
    for path in out.rglob("*"):
        if path.is_file() and path.name != "checkpoint":
            data = path.read_bytes()
            assert b"dec-0" not in data and b"verdict" not in data
            assert base64.b64encode(b"dec-0")[:6] not in data
