"""Tiles (C2SP tlog-tiles) checked by a client written here from the spec alone.

A format-2 log (the default) publishes the spec's entry bundles, whose entries are the records'
commitments ``SHA-256(line)``; a format-1 log publishes commitment bundles of leaf hashes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kzai_guard.audit.checkpoint import SignedCheckpoint
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.merkle import verify_consistency
from kzai_guard.audit.proof import checkpoints
from kzai_guard.audit.retention import prune
from kzai_guard.audit.segments import list_segments, read_anchor
from kzai_guard.audit.tiles import tile_path, write_tiles
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


def _bundle_entries(data: bytes) -> list[bytes]:
    """The entries of a tlog-tiles bundle: big-endian uint16 length, then the bytes."""
    entries, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at : at + 2], "big")
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    assert at == len(data)
    return entries


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1 MTH over leaf hashes, by its recursion."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _sha(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:]))


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
    entries = [p for p in (out / "tile" / "entries").rglob("*") if p.is_file()]
    assert len(entries) == 274
    assert (out / "tile/entries/273.p/112").stat().st_size == 112 * 34
    assert not (out / "tile" / "commitments").exists()


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
    leaf = _sha(b"\x00" + _sha(line))
    path = client.path(41_234, 0, size)
    assert _root_from_path(41_234, size, leaf, path) == root
    old = next(n for n in checkpoints(directory) if n.checkpoint.size == 30_000)
    assert client.mth(0, 30_000) == old.checkpoint.root
    proof = client.subproof(30_000, 0, size, True)
    assert verify_consistency(30_000, size, old.checkpoint.root, root, proof)


def _entry_bundles(out: Path, size: int, start: int = 0) -> list[bytes]:
    """Every entry of the bundles from index ``start`` (a multiple of 256) to ``size``."""
    entries: list[bytes] = []
    for n in range(start // 256, (size + 255) // 256):
        width = min(256, size - n * 256)
        name = f"{n:03d}" + ("" if width == 256 else f".p/{width}")
        found = _bundle_entries((out / "tile" / "entries" / name).read_bytes())
        assert len(found) == width
        entries += found
    return entries


def _signed_checkpoint(text: str, key_name: str, public_key: bytes) -> tuple[str, int, bytes]:
    """C2SP tlog-checkpoint and signed-note, from the specs: (origin, size, root) once the
    Ed25519 signature under ``key_name`` checks, else an exception."""
    body, _, signatures = text.partition("\n\n")
    origin, size, root = body.split("\n")[:3]
    key_id = _sha(key_name.encode() + b"\n\x01" + public_key)[:4]
    for line in signatures.rstrip("\n").split("\n"):
        dash, name, blob = line.split(" ")
        raw = base64.b64decode(blob)
        if dash == "\u2014" and name == key_name and raw[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], (body + "\n").encode())
            return origin, int(size), base64.b64decode(root)
    raise AssertionError("no signature of the log's key")


def test_a_tlog_client_rebuilds_the_signed_root_from_the_entry_bundles_and_proves_a_line(
    published: tuple[Path, Path, Signer],
) -> None:
    directory, out, signer = published
    text = (out / "checkpoint").read_text()
    origin, size, root = _signed_checkpoint(text, signer.name, signer.public_key.raw)
    assert origin == "t.example/l"
    entries = _entry_bundles(out, size)
    assert len(entries) == size and {len(e) for e in entries} == {32}
    leaves = [_sha(b"\x00" + e) for e in entries]
    assert _mth(leaves) == root
    # each entry hashes to its level-0 tile hash, as the spec requires
    client = TileClient(out, size)
    assert [client.tile_hash(0, i) for i in (0, 255, 256, 69_999)] == [
        leaves[i] for i in (0, 255, 256, 69_999)
    ]
    # a person holding their line hashes it to its entry and proves it from the hash tiles
    line = (directory / "00000000000000000000.log").read_bytes().split(b"\n")[12_345]
    assert _sha(line) == entries[12_345]
    path = client.path(12_345, 0, size)
    assert _root_from_path(12_345, size, _sha(b"\x00" + _sha(line)), path) == root
    forged = line.replace(b'"verdict":"block"', b'"verdict":"allow"')
    assert forged != line
    assert _root_from_path(12_345, size, _sha(b"\x00" + _sha(forged)), path) != root


def test_entry_bundles_hold_commitments_and_no_record(
    published: tuple[Path, Path, Signer],
) -> None:
    directory, out, _ = published
    bundle = (out / "tile/entries/001").read_bytes()
    assert all(bundle[i : i + 2] == b"\x00\x20" for i in range(0, len(bundle), 34))
    line = (directory / "00000000000000000000.log").read_bytes().split(b"\n")[256]
    assert bundle[2:34] == _sha(line)
    for path in out.rglob("*"):
        if path.is_file() and path.name != "checkpoint":
            data = path.read_bytes()
            assert b"dec-0" not in data and b"verdict" not in data
            assert base64.b64encode(b"dec-0")[:6] not in data


def test_republishing_writes_only_the_partial_tiles_and_bundles(
    published: tuple[Path, Path, Signer],
) -> None:
    directory, out, _ = published
    report = write_tiles(directory, out)
    assert sorted(report.written) == [
        "checkpoint",
        "tile/0/273.p/112",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
        "tile/entries/273.p/112",
    ]


FORMAT_1_SIZE = 600


@pytest.fixture(scope="module")
def published_format_1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Signer]:
    base = tmp_path_factory.mktemp("tiles1")
    signer = Signer.generate("log-key")
    directory = base / "audit"
    log = AuditLog.open(
        directory,
        signer=signer,
        checkpoint_interval_ms=3_600_000,
        origin="t.example/l1",
        log_format=1,
    )
    for i in range(FORMAT_1_SIZE):
        log.write(make_record(i))
    log.close()
    out = base / "public"
    assert main(["tiles", str(directory), str(out)]) == 0
    return directory, out, signer


def test_a_format_1_log_publishes_commitment_bundles_not_entry_bundles(
    published_format_1: tuple[Path, Path, Signer],
) -> None:
    directory, out, _ = published_format_1
    assert not (out / "tile" / "entries").exists()
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


def test_the_tree_recomputed_from_the_commitment_bundles_is_the_signed_one(
    published_format_1: tuple[Path, Path, Signer],
) -> None:
    directory, out, signer = published_format_1
    note = SignedCheckpoint.parse((out / "checkpoint").read_text())
    signer.public_key.verify(note.signatures[0][2], note.checkpoint.body())
    size = note.checkpoint.size
    leaves: list[bytes] = []
    for n in range((size + 255) // 256):
        width = min(256, size - n * 256)
        name = f"{n:03d}" + ("" if width == 256 else f".p/{width}")
        leaves += _bundle_entries((out / "tile" / "commitments" / name).read_bytes())
    assert len(leaves) == size
    assert _mth(leaves) == note.checkpoint.root
    lines = (directory / "00000000000000000000.log").read_bytes().split(b"\n")
    assert [_sha(b"\x00" + lines[i]) for i in (0, 255, 256, 599)] == [
        leaves[i] for i in (0, 255, 256, 599)
    ]


PRUNED_SIZE = 1500


@pytest.fixture
def pruned(tmp_path: Path) -> tuple[Path, Signer, int]:
    """A log of 1500 records pruned at a size that is not a multiple of 256."""
    signer = Signer.generate("log-key")
    directory = tmp_path / "audit"
    log = AuditLog.open(
        directory,
        signer=signer,
        origin="t.example/pruned",
        segment_max_bytes=60_000,
        checkpoint_interval_ms=3_600_000,
    )
    for i in range(PRUNED_SIZE):
        log.write(make_record(i))
    log.close()
    old = time.time() - 200 * 86_400
    for seg in list_segments(directory)[:4]:
        os.utime(seg.path, (old, old))
    prune(directory, signer=signer)
    anchor = read_anchor(directory)
    assert anchor is not None and anchor.size % 256 and anchor.size > 512
    return directory, signer, anchor.size


def test_a_pruned_log_publishes_every_tile_past_its_anchor_and_proofs_hold(
    pruned: tuple[Path, Signer, int], tmp_path: Path
) -> None:
    directory, signer, anchor = pruned
    out = tmp_path / "public"
    assert main(["tiles", str(directory), str(out)]) == 0
    note = SignedCheckpoint.parse((out / "checkpoint").read_text())
    signer.public_key.verify(note.signatures[0][2], note.checkpoint.body())
    size, root = note.checkpoint.size, note.checkpoint.root
    assert size == PRUNED_SIZE
    # tiles ending at or below the anchor (the minimum index) are not published
    first = anchor // 256
    assert sorted(p.name for p in (out / "tile" / "0").iterdir()) == [
        *(f"{n:03d}" for n in range(first, 5)),
        "005.p",
    ]
    assert (out / "tile/1/000.p/5").stat().st_size == 5 * 32
    client = TileClient(out, size)
    assert client.mth(0, size) == root
    lines = b"".join(seg.path.read_bytes() for seg in list_segments(directory)).split(b"\n")
    for seq in (anchor, anchor + 1, 767, 768, 1024, size - 1):
        leaf = _sha(b"\x00" + _sha(lines[seq - anchor]))
        assert _root_from_path(seq, size, leaf, client.path(seq, 0, size)) == root
    # the bundle holding the anchor also holds pruned records: entries start at the next one
    entries_from = (anchor // 256 + 1) * 256
    assert not (out / "tile" / "entries" / f"{anchor // 256:03d}").exists()
    entries = _entry_bundles(out, size, entries_from)
    assert entries == [_sha(line) for line in lines[entries_from - anchor : size - anchor]]
    older = next(n for n in checkpoints(directory) if n.checkpoint.size >= anchor)
    old_size = older.checkpoint.size
    assert client.mth(0, old_size) == older.checkpoint.root
    proof = client.subproof(old_size, 0, size, True)
    assert verify_consistency(old_size, size, older.checkpoint.root, root, proof)


def test_tiles_whose_hashes_an_earlier_pruning_released_are_named_and_withheld(
    pruned: tuple[Path, Signer, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _, anchor = pruned
    # what pruning released before it kept whole tiles: every hash before (A >> L) - 1
    for level_file in (directory / "tree").glob("level-*.hashes"):
        level = int(level_file.name[6:8])
        released = max((anchor >> level) - 1, 0) * 32
        with level_file.open("r+b") as f:
            f.write(bytes(released))
    out = tmp_path / "public"
    assert main(["tiles", str(directory), str(out)]) == 1
    captured = capsys.readouterr()
    first = anchor // 256
    in_tile = anchor - 1 - first * 256
    assert captured.err == (
        f"kzai-guard tiles: cannot publish tile/0/{first:03d}: {in_tile} of its hashes cover "
        "pruned records and were released by an earlier pruning; records "
        f"{anchor}..{first * 256 + 255} cannot be proved from the tiles (prove them with "
        "`kzai-guard prove`)\n"
        "kzai-guard tiles: cannot publish tile/1/000.p/5: 1 of its hashes cover pruned "
        f"records and were released by an earlier pruning; records {anchor}..1279 cannot be "
        "proved from the tiles (prove them with `kzai-guard prove`)\n"
    )
    assert not (out / "tile" / "0" / f"{first:03d}").exists()
    assert not (out / "tile" / "1").exists()
    assert (out / "tile" / "0" / f"{first + 1:03d}").stat().st_size == 8192
    assert (out / "checkpoint").exists()
    report = write_tiles(directory, tmp_path / "again")
    assert [t.path for t in report.withheld] == [f"tile/0/{first:03d}", "tile/1/000.p/5"]
    assert report.minimum_index == anchor
