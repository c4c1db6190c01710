"""The id index the writer builds from the ids it kept is the one a scan of the segment builds.

Every sealed segment's index is compared byte for byte with :func:`build_index` of the same
segment, and the log's own messages say which way it was built: from the writer's ids, or
(where they do not vouch for the segment) from the file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kzai_guard.audit.adoption import mark_tail
from kzai_guard.audit.checkpoint import SignedCheckpoint, read_notes
from kzai_guard.audit.index import IdIndex, build_index, index_path, line_id
from kzai_guard.audit.keys import Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.lookup import find_record
from kzai_guard.audit.segments import Segment, list_segments, parse_line

from .conftest import make_record

FROM_FILE = "is indexed from its file"
NOT_INDEXED = "was not indexed"

VARIED = [
    "a",
    "",
    "dec-000001",
    "0190f3c2-7b1e-7cc1-9a3e-4d5e6f708192",
    "\u00e9",
    "\u03a9\u03bc\u03ad\u03b3\u03b1-\u043a\u043b\u044e\u0447-\u4e2d\u6587-\U0001f642",
    "x" * 300,
    'quote"and\\backslash',
    "tab\tnew\nline\x01",
    "/slash/",
    "\u2028separator",
    "\U0010ffff",
]


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _audit_messages() -> Iterator[list[str]]:
    """What the audit log says meanwhile, from every thread, debug messages included."""
    logger = logging.getLogger("kzai_guard.audit")
    handler, level = _Messages(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _append(log: AuditLog, batches: Sequence[Sequence[str]], *, sealed: bool = True) -> None:
    """Write each batch of ids, waiting for it to be written before the next one.

    ``sealed=False`` writes records without a subject, whose fields are not sealed.
    """
    n = log.size
    for batch in batches:
        for record_id in batch:
            if sealed:
                log.write(make_record(n, id=record_id))
            else:
                log.write(make_record(n, id=record_id, subject=None))
            n += 1
        log.flush()


def _options() -> dict[str, object]:
    # the records are from 2023: without a long age limit a reopened segment is sealed at once
    return {"segment_max_bytes": 1 << 24, "segment_max_age_s": 1e12, "checkpoint_every": 1000}


def _same_as_from_file(seg: Segment) -> bool:
    """Whether the index of ``seg`` is byte for byte the one built from the segment's file."""
    kept = index_path(seg).read_bytes()
    index_path(seg).unlink()
    assert build_index(seg)
    return index_path(seg).read_bytes() == kept


def _sealed(path: Path) -> list[Segment]:
    return list_segments(path)[:-1]


def test_the_index_of_a_sealed_segment_is_the_one_built_from_the_file(
    tmp_path: Path, signer: Signer
) -> None:
    ids = [f"{VARIED[i % len(VARIED)]}-{i}" for i in range(1300)]
    ids[700] = ids[3]  # a repeated id: two entries with one key
    batches = [ids[i : i + 97] for i in range(0, len(ids), 97)]  # over 512 a segment: 2 blocks
    with _audit_messages() as messages:
        log = AuditLog.open(tmp_path / "a", signer=signer, **_options())  # type: ignore[arg-type]
        _append(log, batches[:6])
        log.rotate_segment()
        _append(log, batches[6:])
        log.rotate_segment()
        log.close()
    sealed = _sealed(tmp_path / "a")
    assert len(sealed) == 2
    assert not [m for m in messages if FROM_FILE in m or NOT_INDEXED in m]
    assert all(_same_as_from_file(seg) for seg in sealed)


def test_a_lone_surrogate_id_leaves_the_segment_to_the_file(tmp_path: Path, signer: Signer) -> None:
    # the line holds the id escaped, which the ids the writer kept cannot vouch for
    ids = ["plain-1", "lone-\udc80-surrogate", "\u4e2d-2", "plain-3"]
    with _audit_messages() as messages:
        log = AuditLog.open(tmp_path / "a", signer=signer, **_options())  # type: ignore[arg-type]
        _append(log, [ids[:2], ids[2:]], sealed=False)
        log.rotate_segment()
        log.close()
    (seg,) = _sealed(tmp_path / "a")
    assert not [m for m in messages if NOT_INDEXED in m]
    assert _same_as_from_file(seg)
    index = IdIndex.open(seg, len(ids))
    assert isinstance(index, IdIndex)
    try:
        assert [index.lookup(i) for i in ("plain-1", "\u4e2d-2", "plain-3")] == [[0], [2], [3]]
    finally:
        index.close()


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.text(max_size=24)
            | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
            min_size=1,
            max_size=8,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_whatever_the_ids_the_sealed_index_is_the_one_built_from_the_file(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[str]]
) -> None:
    path = tmp_path_factory.mktemp("ids") / "a"
    with _audit_messages() as messages:
        log = AuditLog.open(path, signer=_SIGNER, **_options())  # type: ignore[arg-type]
        _append(log, batches, sealed=False)
        log.rotate_segment()
        log.close()
    (seg,) = _sealed(path)
    assert not [m for m in messages if NOT_INDEXED in m]
    assert _same_as_from_file(seg)


def test_after_reopening_mid_segment_the_next_rotation_indexes_the_whole_segment(
    tmp_path: Path, signer: Signer
) -> None:
    ids = [f"{VARIED[i % len(VARIED)]}#{i}" for i in range(5000)]  # replayed in parts
    path = tmp_path / "a"
    with _audit_messages() as messages:
        log = AuditLog.open(path, signer=signer, **_options())  # type: ignore[arg-type]
        _append(log, [ids[:2000], ids[2000:4900]])
        log.close()
        log = AuditLog.open(path, signer=signer, **_options())  # type: ignore[arg-type]
        _append(log, [ids[4900:4950], ids[4950:]])
        log.rotate_segment()
        log.close()
    (seg,) = _sealed(path)
    assert not [m for m in messages if FROM_FILE in m or NOT_INDEXED in m]
    assert _same_as_from_file(seg)
    sample = range(0, len(ids), 37)
    assert [find_record(path, decision_id=ids[i])[0] for i in sample] == list(sample)


def test_a_replayed_line_the_file_scan_reads_otherwise_leaves_the_segment_to_the_file(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "a"
    for ids in (["first"], ["second"]):
        log = AuditLog.open(path, signer=signer, **_options())  # type: ignore[arg-type]
        _append(log, [ids])
        log.close()
    (seg,) = list_segments(path)
    # as a crash leaves it: the second record written, its checkpoint not yet
    notes = read_notes(seg.checkpoints)
    kept = [n for n in notes if isinstance(n, SignedCheckpoint)][:-1]
    seg.checkpoints.write_text("".join(f"{n.note()}\n" for n in kept))
    mark_tail(path, kept[-1].checkpoint, signer)  # made by the writer before the second record
    data = seg.path.read_bytes()
    last = data.rfind(b"\n", 0, len(data) - 1) + 1
    # still the same JSON, but the scan of the file finds no id on it
    seg.path.write_bytes(data[:last] + data[last:].replace(b'"id":"', b'"id": "'))
    with _audit_messages() as messages:
        log = AuditLog.open(path, signer=signer, **_options())  # type: ignore[arg-type]
        _append(log, [["third"]])
        log.rotate_segment()
        log.close()
    assert [m for m in messages if FROM_FILE in m or NOT_INDEXED in m] == [
        f"audit segment {seg.path} was not indexed: it is not cleanly sealed",
    ]
    assert not index_path(seg).exists()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"prev":"00","rec":{"id":"a\\"b","kind":"k"},"seq":0}', 'a"b'),
        (b'{"prev":"00","rec":{"id":"\xc3\xa9","kind":"k"},"seq":0}', "\u00e9"),
        (b'{"prev":"00","rec":{"id":"\\u00e9","kind":"k"},"seq":0}', None),
        (b'{"prev":"00","rec":{"id": "a","kind":"k"},"seq":0}', None),
        (b'{"prev":"00","rec":{"id":"a","x":{"id":"b"}},"seq":0}', "a"),
        (b'{"prev":"00","rec":{"id":"a","id":"b"},"seq":0}', None),
        (b'{"prev":"00","rec":{"id":7},"seq":0}', None),
        (b'{"prev":"00","rec":{"kind":"k"},"seq":0}', None),
    ],
)
def test_a_replayed_line_vouches_for_its_id_only_where_the_scan_reads_it_canonically(
    line: bytes, expected: str | None
) -> None:
    assert line_id(line, parse_line(line)["rec"]) == expected


_SIGNER = Signer.generate("test-key")
