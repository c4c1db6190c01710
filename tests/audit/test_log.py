"""The audit log sink: writing, reading back, checkpoints, rotation, reopening."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from kzai_guard.audit.checkpoint import CheckpointStatus, SignedCheckpoint, read_notes
from kzai_guard.audit.keys import Keyring, Signer
from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.merkle import CompactRange
from kzai_guard.audit.proof import checkpoints
from kzai_guard.audit.reader import ChainBroken, follow, read_verified
from kzai_guard.audit.segments import GENESIS, list_segments, parse_line
from kzai_guard.audit.sink import AuditSink
from kzai_guard.audit.verify import verify_log
from kzai_guard.errors import AuditLogError, AuditUnavailable, ConfigurationError

from .conftest import FORMATS, WriteLog, leaf_of, make_record


def _lines(directory: Path) -> list[bytes]:
    out: list[bytes] = []
    for seg in list_segments(directory):
        out.extend(seg.path.read_bytes().split(b"\n")[:-1])
    return out


def test_audit_log_is_an_audit_sink(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer)
    try:
        assert isinstance(log, AuditSink)
        assert log.healthy is True
    finally:
        log.close()
    assert log.healthy is False


def test_a_writer_that_stopped_leaves_the_log_unhealthy(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AuditLog, "_loop", lambda self: None)
    log = AuditLog.open(tmp_path / "a", signer=signer, durability="async")
    try:
        log.write(make_record(0))  # the writer starts with the first write
        assert log._writer is not None
        log._writer.join(timeout=10)
        assert not log._writer.is_alive()
        assert log.healthy is False
    finally:
        log.close()


def test_records_read_back_in_order_with_personal_fields(write_log: WriteLog) -> None:
    directory = write_log(20)
    entries = list(read_verified(directory))
    assert [e.seq for e in entries] == list(range(20))
    assert [e.record for e in entries] == [make_record(i) for i in range(20)]


@pytest.mark.parametrize("log_format", FORMATS)
def test_each_line_links_to_the_hash_of_the_line_before(
    write_log: WriteLog, log_format: int
) -> None:
    lines = _lines(write_log(10, log_format=log_format))
    prev = GENESIS
    for seq, line in enumerate(lines):
        value = parse_line(line)
        assert (value["seq"], value["prev"]) == (seq, prev)
        prev = leaf_of(log_format, line).hex()


def test_a_new_log_is_format_2_and_its_marker_is_private(tmp_path: Path, signer: Signer) -> None:
    AuditLog.open(tmp_path / "a", signer=signer).close()
    marker = tmp_path / "a" / "format"
    assert marker.read_bytes() == b"2\n"
    assert marker.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("log_format", FORMATS)
def test_a_log_keeps_its_format_whatever_a_later_open_asks(
    write_log: WriteLog, log_format: int
) -> None:
    directory = write_log(5, log_format=log_format)
    other = 3 - log_format
    directory = write_log(5, directory=directory, log_format=other)
    lines = _lines(directory)
    assert len(lines) == 10
    assert parse_line(lines[5])["prev"] == leaf_of(log_format, lines[4]).hex()
    assert [e.seq for e in read_verified(directory)] == list(range(10))


def test_a_log_without_a_format_marker_is_format_1(tmp_path: Path, signer: Signer) -> None:
    # as every log made before format 2: no marker file
    directory = tmp_path / "a"
    AuditLog.open(directory, signer=signer, log_format=1, checkpoint_every=3).close()
    (directory / "format").unlink()
    log = AuditLog.open(directory, signer=signer, checkpoint_every=3)
    for i in range(4):
        log.write(make_record(i))
    log.close()
    lines = _lines(directory)
    assert parse_line(lines[3])["prev"] == leaf_of(1, lines[2]).hex()
    assert not (directory / "format").exists()
    assert [e.seq for e in read_verified(directory)] == list(range(4))


def test_personal_fields_are_not_in_clear_on_disk(write_log: WriteLog) -> None:
    data = b"".join(_lines(write_log(5)))
    assert b"score=" not in data
    assert b'"subject"' not in data
    assert b'"sealed"' in data


def test_sync_write_returns_a_future_resolved_after_fsync(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, durability="sync")
    futures = [log.write(make_record(i)) for i in range(50)]
    assert all(isinstance(f, Future) for f in futures)
    for f in futures:
        assert f is not None and f.result(timeout=10) is None
    assert log.size == 50
    log.close()


def test_async_write_returns_none(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, durability="async")
    assert log.write(make_record(0)) is None
    log.close()
    assert [e.seq for e in read_verified(tmp_path / "a")] == [0]


@pytest.mark.parametrize("log_format", FORMATS)
def test_close_writes_a_final_checkpoint_over_everything(
    tmp_path: Path, signer: Signer, keyring: Keyring, log_format: int
) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, checkpoint_every=1000, log_format=log_format)
    for i in range(13):
        log.write(make_record(i))
    log.close()
    notes = checkpoints(tmp_path / "a")
    assert [n.checkpoint.size for n in notes] == [13]
    tree = CompactRange()
    for line in _lines(tmp_path / "a"):
        tree.append(leaf_of(log_format, line))
    assert notes[0].checkpoint.root == tree.root()
    assert notes[0].status(keyring) is CheckpointStatus.VALID


def test_checkpoint_every_n_records(write_log: WriteLog) -> None:
    directory = write_log(30, checkpoint_every=10, durability="sync")
    sizes = [n.checkpoint.size for n in checkpoints(directory)]
    assert sizes == [10, 20, 30]


def test_checkpoint_after_interval(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(
        tmp_path / "a", signer=signer, checkpoint_every=1000, checkpoint_interval_ms=20
    )
    log.write(make_record(0))
    deadline = time.monotonic() + 5
    while log.last_checkpoint is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.last_checkpoint is not None
    assert log.last_checkpoint.checkpoint.size == 1
    log.close()


def test_reopen_continues_chain_and_tree(tmp_path: Path, signer: Signer, keyring: Keyring) -> None:
    for start, stop in ((0, 5), (5, 10), (10, 12)):
        log = AuditLog.open(tmp_path / "a", signer=signer)
        for i in range(start, stop):
            log.write(make_record(i))
        log.close()
    assert [e.seq for e in read_verified(tmp_path / "a", public_keys=keyring)] == list(range(12))
    report = verify_log(tmp_path / "a", keyring)
    assert (report.ok, report.records, report.signed_size) == (True, 12, 12)


def test_segments_rotate_by_size_and_stay_verifiable(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, segment_max_bytes=2000, durability="sync")
    for i in range(40):
        log.write(make_record(i))
    log.close()
    segments = list_segments(tmp_path / "a")
    assert len(segments) > 3
    assert segments[0].first == 0
    report = verify_log(tmp_path / "a", keyring)
    assert (report.ok, report.records) == (True, 40)
    assert [e.seq for e in read_verified(tmp_path / "a", public_keys=keyring)] == list(range(40))


def test_reader_starts_after_seq_in_a_later_segment(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, segment_max_bytes=1500, durability="sync")
    for i in range(30):
        log.write(make_record(i))
    log.close()
    entries = list(read_verified(tmp_path / "a", after_seq=21, public_keys=keyring))
    assert [e.seq for e in entries] == list(range(22, 30))
    assert entries[0].record == make_record(22)


def test_key_rotation_keeps_old_checkpoints_verifiable(tmp_path: Path, signer: Signer) -> None:
    new = Signer.generate("new-key")
    log = AuditLog.open(tmp_path / "a", signer=signer, checkpoint_every=4)
    for i in range(8):
        log.write(make_record(i))
    log.rotate_key(new)
    for i in range(8, 16):
        log.write(make_record(i))
    log.close()
    names = [n.signatures[0][0] for n in checkpoints(tmp_path / "a")]
    assert names == ["test-key", "test-key", "new-key", "new-key"]
    both = Keyring([signer.public_key, new.public_key])
    report = verify_log(tmp_path / "a", both)
    assert (report.ok, report.key_names) == (True, ["new-key", "test-key"])
    only_new = verify_log(tmp_path / "a", Keyring([new.public_key]))
    assert only_new.problem is not None
    assert (only_new.problem.kind, only_new.problem.seq) == ("unknown-key-checkpoint", 3)


def test_reopening_with_a_new_signer_rotates_the_key(tmp_path: Path, signer: Signer) -> None:
    new = Signer.generate("next")
    log = AuditLog.open(tmp_path / "a", signer=signer)
    log.write(make_record(0))
    log.close()
    with pytest.raises(AuditLogError, match="signed by test-key"):
        AuditLog.open(tmp_path / "a", signer=new)
    log = AuditLog.open(tmp_path / "a", signer=new, previous_keys=[signer.public_key])
    log.write(make_record(1))
    log.close()
    assert [n.signatures[0][0] for n in checkpoints(tmp_path / "a")] == ["test-key", "next"]
    assert verify_log(tmp_path / "a", Keyring([signer.public_key, new.public_key])).ok


def test_open_without_signer_makes_a_demo_key_once(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "a")
    first = log.signer.public_key
    log.write(make_record(0))
    log.close()
    log = AuditLog.open(tmp_path / "a")
    assert log.signer.public_key == first
    log.close()
    assert sorted(p.name for p in (tmp_path / "a" / "keys").iterdir()) == [
        "kzai-guard-demo.key",
        "kzai-guard-demo.pub",
    ]
    assert verify_log(tmp_path / "a", Keyring.load([tmp_path / "a/keys/kzai-guard-demo.pub"])).ok


def test_two_opens_of_one_directory_write_one_log(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    first = AuditLog.open(tmp_path / "a", signer=signer)
    second = AuditLog.open(tmp_path / "a", signer=signer)
    try:
        for i in range(0, 20, 2):
            for log, n in ((first, i), (second, i + 1)):
                future = log.write(make_record(n))
                assert isinstance(future, Future)
                future.result()
    finally:
        first.close()
        second.close()
    entries = list(read_verified(tmp_path / "a", public_keys=keyring))
    assert [e.record.id for e in entries] == [make_record(i).id for i in range(20)]
    assert verify_log(tmp_path / "a", keyring).ok


def test_write_after_close_raises_audit_unavailable(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer)
    log.close()
    with pytest.raises(AuditUnavailable, match="closed"):
        log.write(make_record(0))


def test_origin_is_kept_and_a_different_one_refused(tmp_path: Path, signer: Signer) -> None:
    AuditLog.open(tmp_path / "a", signer=signer, origin="bank.example/credit").close()
    log = AuditLog.open(tmp_path / "a", signer=signer)
    assert log.origin == "bank.example/credit"
    log.close()
    with pytest.raises(ConfigurationError, match=r"has origin 'bank\.example/credit'"):
        AuditLog.open(tmp_path / "a", signer=signer, origin="other")


def test_bad_durability_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="durability must be"):
        AuditLog.open(tmp_path / "a", durability="fast")  # type: ignore[arg-type]


def test_retention_below_six_months_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="legal minimum of six months"):
        AuditLog.open(tmp_path / "a", retention_days=30)


def test_async_queue_applies_backpressure_and_loses_nothing(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, queue_limit=8)

    def produce(offset: int) -> None:
        for i in range(offset, offset + 300):
            log.write(make_record(i))

    threads = [threading.Thread(target=produce, args=(k * 300,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    seen = sorted(e.record.id for e in read_verified(tmp_path / "a"))
    assert seen == sorted(make_record(i).id for i in range(1200))


def test_follow_sees_new_records_across_rotation(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, segment_max_bytes=1500, durability="sync")
    stop = threading.Event()
    got: list[int] = []

    def tail() -> None:
        for entry in follow(tmp_path / "a", poll_interval=0.01, stop=stop):
            got.append(entry.seq)
            if entry.seq == 24:
                stop.set()

    reader = threading.Thread(target=tail)
    for i in range(5):
        log.write(make_record(i))
    reader.start()
    for i in range(5, 25):
        future = log.write(make_record(i))
        assert isinstance(future, Future)
        future.result()
    reader.join(timeout=10)
    log.close()
    assert got == list(range(25))


def test_reader_raises_chain_broken_at_an_altered_line(write_log: WriteLog) -> None:
    directory = write_log(6)
    seg = list_segments(directory)[0].path
    lines = seg.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"seq":3', b'"seq":3 ')
    seg.write_bytes(b"\n".join(lines))
    seen: list[int] = []
    with pytest.raises(ChainBroken) as info:
        for entry in read_verified(directory):
            seen.append(entry.seq)
    assert seen == [0, 1, 2, 3]
    assert info.value.seq == 4


def test_reader_with_keys_rejects_a_forged_checkpoint(
    write_log: WriteLog, keyring: Keyring
) -> None:
    directory = write_log(7)
    cp = list_segments(directory)[0].checkpoints
    (forged,) = read_notes(cp)
    assert isinstance(forged, SignedCheckpoint)
    assert forged.checkpoint.size == 7
    stranger = Signer.generate("test-key")
    cp.write_text(forged.checkpoint.sign([stranger]).note() + "\n")
    with pytest.raises(ChainBroken, match="signed by no known key") as info:
        list(read_verified(directory, public_keys=keyring))
    assert info.value.seq == 6


def test_written_lines_are_rfc8785_canonical(write_log: WriteLog) -> None:
    import orjson
    import rfc8785

    for line in _lines(write_log(10)):
        assert rfc8785.dumps(orjson.loads(line)) == line


def test_torn_last_line_is_cut_and_the_chain_continues(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer)
    for i in range(5):
        log.write(make_record(i))
    log.close()
    seg = list_segments(tmp_path / "a")[0].path
    with open(seg, "ab") as f:
        f.write(b'{"prev":"00ab')
    log = AuditLog.open(tmp_path / "a", signer=signer)
    log.write(make_record(5))
    log.close()
    assert [e.seq for e in read_verified(tmp_path / "a", public_keys=keyring)] == list(range(6))
    assert verify_log(tmp_path / "a", keyring).ok


def test_damage_in_the_middle_is_not_repaired_but_refused(tmp_path: Path, signer: Signer) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer)
    for i in range(5):
        log.write(make_record(i))
    log.close()
    seg = list_segments(tmp_path / "a")[0].path
    lines = seg.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"seq":2', b'"seq":9')
    seg.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditLogError, match="line for seq 2 does not continue the chain"):
        AuditLog.open(tmp_path / "a", signer=signer)


def test_missing_tree_files_are_rebuilt_on_open(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    import shutil

    from kzai_guard.audit.proof import inclusion_bundle, verify_bundle

    log = AuditLog.open(tmp_path / "a", signer=signer, segment_max_bytes=1500, durability="sync")
    for i in range(20):
        log.write(make_record(i))
    log.close()
    shutil.rmtree(tmp_path / "a" / "tree")
    AuditLog.open(tmp_path / "a", signer=signer).close()
    for seq in (0, 7, 19):
        assert verify_bundle(inclusion_bundle(tmp_path / "a", seq=seq), keyring).ok


def test_segments_rotate_by_age(tmp_path: Path, signer: Signer, keyring: Keyring) -> None:
    log = AuditLog.open(tmp_path / "a", signer=signer, segment_max_age_s=0.0, durability="sync")
    for i in range(3):
        future = log.write(make_record(i))
        assert isinstance(future, Future)
        future.result()
    log.close()
    assert [s.first for s in list_segments(tmp_path / "a")] == [0, 1, 2]
    assert verify_log(tmp_path / "a", keyring).ok


def test_full_async_queue_refuses_after_put_timeout(tmp_path: Path, signer: Signer) -> None:
    release = threading.Event()

    class SlowSigner:
        def __call__(self, message: bytes) -> bytes:
            release.wait(10)
            return signer._sign(message)

    slow = Signer(signer.public_key, SlowSigner())
    log = AuditLog.open(
        tmp_path / "a",
        signer=slow,
        queue_limit=2,
        put_timeout=0.05,
        checkpoint_every=1,
        durability="async",
    )
    log.write(make_record(0))
    deadline = time.monotonic() + 5
    while log.size == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    log.write(make_record(1))
    log.write(make_record(2))
    with pytest.raises(AuditUnavailable, match=r"2 records behind for 0\.05s"):
        log.write(make_record(3))
    release.set()
    log.close()
    assert [e.seq for e in read_verified(tmp_path / "a")] == [0, 1, 2]


def test_corrupted_tree_files_are_detected_and_rebuilt_on_open(
    tmp_path: Path, signer: Signer, keyring: Keyring
) -> None:
    from kzai_guard.audit.proof import inclusion_bundle, verify_bundle

    log = AuditLog.open(tmp_path / "a", signer=signer, segment_max_bytes=1500, durability="sync")
    for i in range(20):
        log.write(make_record(i))
    log.close()
    level0 = tmp_path / "a" / "tree" / "level-00.hashes"
    level0.write_bytes(bytes(len(level0.read_bytes())))
    log = AuditLog.open(tmp_path / "a", signer=signer)
    log.write(make_record(20))
    log.close()
    assert verify_log(tmp_path / "a", keyring).ok
    for seq in (0, 11, 20):
        assert verify_bundle(inclusion_bundle(tmp_path / "a", seq=seq), keyring).ok
