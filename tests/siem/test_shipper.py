"""The shipper: outages, restarts, SIGKILL, SIGTERM and chain breaks, with real receivers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import orjson
import pytest

from kzai_guard.audit.log import AuditLog
from kzai_guard.audit.reader import ChainBroken
from kzai_guard.siem import (
    Backoff,
    CursorError,
    CursorFile,
    Position,
    Shipper,
    TransportError,
    make_encoder,
    open_destination,
)

from .conftest import SETTINGS, sample_record, write_log
from .receivers import HOST, HttpReceiver, SyslogTcpReceiver, wait_until
from .test_syslog import parse_strict

FAST = Backoff(initial=0.05, maximum=0.4)
ROOT = Path(__file__).resolve().parents[2]


def first_occurrences(seqs: list[int]) -> list[int]:
    seen: set[int] = set()
    out = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            out.append(seq)
    return out


def syslog_seqs(messages: list[bytes]) -> list[int]:
    return [int(parse_strict(m.decode())["sd"]["kzai@32473"]["seq"]) for m in messages]


def open_log(directory: Path) -> AuditLog:
    return AuditLog.open(
        directory, durability="sync", seal_personal_fields=False, retention_days=None
    )


def append(log: AuditLog, start: int, stop: int) -> None:
    for i in range(start, stop):
        future = log.write(sample_record(i))
        assert isinstance(future, Future)
        future.result(timeout=10)


def test_tcp_receiver_outage_then_back_loses_nothing(tmp_path: Path) -> None:
    receiver = SyslogTcpReceiver().start()
    port = receiver.port
    directory = tmp_path / "audit"
    log = open_log(directory)
    again: SyslogTcpReceiver | None = None
    destination = open_destination(
        f"tcp://{HOST}:{port}", make_encoder("syslog", SETTINGS), timeout=2
    )
    shipper = Shipper(
        directory,
        destination,
        cursor=tmp_path / "cursor",
        unverified=True,
        batch_size=7,
        linger=0.02,
        backoff=FAST,
        poll_interval=0.05,
    )
    try:
        append(log, 0, 40)
        shipper.start()
        assert wait_until(lambda: len(receiver.received()) >= 40)
        receiver.stop()
        append(log, 40, 80)
        time.sleep(1.5)
        assert shipper.running and shipper.error is None
        assert shipper.shipped_seq == 39
        again = SyslogTcpReceiver(port=port).start()
        append(log, 80, 100)
        assert wait_until(lambda: 99 in syslog_seqs(again.received()), 20)
    finally:
        shipper.stop(10)
        log.close()
        receiver.stop()
        if again is not None:
            again.stop()
    seqs = syslog_seqs(receiver.received() + again.received())
    assert first_occurrences(seqs) == list(range(100))
    assert CursorFile(tmp_path / "cursor").load() == Position(
        99, "dec-000099:99", _hash_of(seqs, receiver.received() + again.received(), 99)
    )
    assert shipper.error is None


def _hash_of(seqs: list[int], messages: list[bytes], seq: int) -> str:
    message = messages[seqs.index(seq)]
    return parse_strict(message.decode())["sd"]["kzai@32473"]["line_hash"]


def test_http_outage_and_server_errors_every_record_arrives_once_deduplicated(
    tmp_path: Path,
) -> None:
    flaky = {3, 4, 9}
    receiver = HttpReceiver(
        lambda n: (503, b'{"code":9}') if n in flaky and not flaky.discard(n) else (200, b"{}")
    ).start()
    port = receiver.port
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(60)])
    destination = open_destination(
        f"hec+http://{HOST}:{port}", make_encoder("hec", SETTINGS), token="t", timeout=2
    )
    progress: list[str | None] = []
    shipper = Shipper(
        directory,
        destination,
        cursor=tmp_path / "cursor",
        unverified=True,
        batch_size=5,
        linger=0.01,
        backoff=FAST,
        poll_interval=0.05,
        on_progress=lambda p: progress.append(p.retrying),
    )
    again: HttpReceiver | None = None
    try:
        shipper.start()
        assert wait_until(lambda: len(receiver.json_lines()) >= 20)
        receiver.stop()
        time.sleep(1.0)
        again = HttpReceiver(port=port).start()
        assert wait_until(lambda: shipper.shipped_seq == 59, 20)
    finally:
        shipper.stop(10)
        receiver.stop()
        if again is not None:
            again.stop()
    lines = receiver.json_lines() + again.json_lines()
    seqs = [line["event"]["seq"] for line in lines]
    assert first_occurrences(seqs) == list(range(60))
    uids = {line["event"]["uid"] for line in lines}
    assert len(uids) == 60
    assert any(p is not None for p in progress)
    assert shipper.error is None


def test_background_shipper_follows_new_records(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    out = tmp_path / "out.jsonl"
    log = open_log(directory)
    shipper = Shipper(
        directory,
        open_destination(f"file:{out}", make_encoder("jsonl", SETTINGS)),
        cursor=tmp_path / "cursor",
        unverified=True,
        linger=0.01,
        poll_interval=0.05,
    )
    try:
        shipper.start()
        append(log, 0, 10)
        assert wait_until(lambda: shipper.shipped_seq == 9, 10)
        append(log, 10, 15)
        assert wait_until(lambda: shipper.shipped_seq == 14, 10)
    finally:
        shipper.stop(10)
        log.close()
    assert not shipper.running
    assert [orjson.loads(line)["seq"] for line in out.read_bytes().splitlines()] == list(range(15))


def test_permanent_rejection_stops_the_shipper(tmp_path: Path) -> None:
    receiver = HttpReceiver(lambda n: (403, b'{"text":"Invalid token","code":4}')).start()
    write_log(tmp_path / "audit", [sample_record(i) for i in range(3)])
    shipper = Shipper(
        tmp_path / "audit",
        open_destination(f"hec+http://{HOST}:{receiver.port}", make_encoder("hec"), token="x"),
        cursor=tmp_path / "cursor",
        unverified=True,
        follow=False,
        backoff=FAST,
    )
    try:
        with pytest.raises(TransportError, match="403"):
            shipper.run()
    finally:
        receiver.stop()
    assert CursorFile(tmp_path / "cursor").load() is None


def tamper_prev(directory: Path, seq: int) -> None:
    segment = directory / f"{0:020d}.log"
    lines = segment.read_bytes().split(b"\n")
    start = lines[seq].index(b'"prev":"') + 8
    lines[seq] = lines[seq][:start] + b"f" * 64 + lines[seq][start + 64 :]
    segment.write_bytes(b"\n".join(lines))


def test_chain_break_ships_what_verifies_then_stops(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(30)])
    tamper_prev(directory, 10)
    out = tmp_path / "out.cef"
    shipper = Shipper(
        directory,
        open_destination(f"file:{out}", make_encoder("cef", SETTINGS)),
        cursor=tmp_path / "cursor",
        unverified=True,
        batch_size=4,
        follow=False,
    )
    with pytest.raises(ChainBroken) as info:
        shipper.run()
    assert info.value.seq == 10
    assert len(out.read_bytes().splitlines()) == 10
    assert shipper.shipped_seq == 9
    saved = CursorFile(tmp_path / "cursor").load()
    assert saved is not None and saved.seq == 9


def test_chain_break_alarm_from_the_command_line(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(20)])
    tamper_prev(directory, 12)
    result = run_cli(
        "ship",
        "--unverified",
        str(directory),
        "--to",
        f"file:{tmp_path / 'out'}",
        "--format",
        "jsonl",
        "--cursor",
        str(tmp_path / "cursor"),
        "--once",
    )
    assert result.returncode == 2
    assert "ALARM" in result.stderr and "seq 12" in result.stderr
    assert "last delivered seq 11" in result.stderr


def test_a_cursor_from_another_log_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(5)])
    cursor = CursorFile(tmp_path / "cursor")
    cursor.save(Position(3, "dec-000003:3", "0" * 64))
    shipper = Shipper(
        directory,
        open_destination(f"file:{tmp_path / 'out'}", make_encoder("jsonl")),
        cursor=cursor,
        unverified=True,
        follow=False,
    )
    with pytest.raises(CursorError, match="seq 3"):
        shipper.run()


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kzai_guard.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def ship_command(directory: Path, port: int, cursor: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kzai_guard.cli.main",
        "ship",
        "--unverified",
        str(directory),
        "--to",
        f"http://{HOST}:{port}/ingest",
        "--format",
        "jsonl",
        "--cursor",
        str(cursor),
        "--batch",
        "20",
        "--linger",
        "0.01",
        "--max-backoff",
        "0.5",
        "--timeout",
        "3",
        "--hostname",
        "h",
        "--unverified",
        *extra,
    ]


def test_sigkill_and_restart_lose_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(400)])
    receiver = HttpReceiver(delay=0.03).start()
    cursor = tmp_path / "cursor"
    try:
        proc = subprocess.Popen(
            ship_command(directory, receiver.port, cursor, "--once"),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_until(lambda: len(receiver.requests) >= 5, 20)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        before = len(receiver.json_lines())
        assert before < 400
        proc = subprocess.Popen(
            ship_command(directory, receiver.port, cursor, "--once"),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        receiver.stop()
    seqs = [line["seq"] for line in receiver.json_lines()]
    assert first_occurrences(seqs) == list(range(400))
    assert len(seqs) - 400 <= 20
    saved = CursorFile(cursor).load()
    assert saved is not None and saved.seq == 399


def test_sigterm_finishes_the_batch_and_saves_the_cursor(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    write_log(directory, [sample_record(i) for i in range(50)])
    receiver = HttpReceiver().start()
    cursor = tmp_path / "cursor"
    try:
        proc = subprocess.Popen(
            ship_command(directory, receiver.port, cursor),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert wait_until(lambda: len(receiver.json_lines()) >= 50, 20)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    finally:
        receiver.stop()
    assert proc.returncode == 0, err
    assert "cursor at seq 49" in err
    saved = CursorFile(cursor).load()
    assert saved is not None and saved.seq == 49
