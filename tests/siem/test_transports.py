"""Transports against real receivers on 127.0.0.1: syslog UDP/TCP/TLS, HTTP (HEC, webhook)."""

from __future__ import annotations

import ssl
from pathlib import Path

import orjson
import pytest

from kzai_guard.siem import SiemEvent, TransportError, make_encoder, open_destination
from kzai_guard.siem.transports import (
    Backoff,
    FileTransport,
    HecTransport,
    HttpTransport,
    TcpSyslogTransport,
    UdpSyslogTransport,
    tls_context,
)

from .conftest import SETTINGS, sample_record
from .receivers import HOST, HttpReceiver, SyslogTcpReceiver, UdpReceiver, self_signed, wait_until
from .test_syslog import parse_strict

SYSLOG = make_encoder("syslog", SETTINGS)


def messages(n: int, detail: str = "line one\nline two") -> list[bytes]:
    return [SYSLOG.encode(SiemEvent(sample_record(i, detail=detail), i, "00")) for i in range(n)]


def test_tcp_octet_counting_delivers_every_message_intact() -> None:
    receiver = SyslogTcpReceiver().start()
    try:
        transport = TcpSyslogTransport(HOST, receiver.port, timeout=5)
        batch = messages(50)
        transport.send(batch[:20])
        transport.send(batch[20:])
        assert wait_until(lambda: len(receiver.received()) == 50, 10)
        assert receiver.received() == batch
        assert parse_strict(receiver.received()[7].decode())["sd"]["kzai@32473"]["seq"] == "7"
        transport.close()
    finally:
        receiver.stop()


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    receiver = SyslogTcpReceiver(tls=server).start()
    try:
        transport = TcpSyslogTransport(HOST, receiver.port, tls=tls_context(cafile=cert), timeout=5)
        batch = messages(10)
        transport.send(batch)
        assert wait_until(lambda: len(receiver.received()) == 10, 10)
        assert receiver.received() == batch
        transport.close()
    finally:
        receiver.stop()


def test_tls_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    receiver = SyslogTcpReceiver(tls=server).start()
    try:
        transport = TcpSyslogTransport(HOST, receiver.port, tls=tls_context(), timeout=5)
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            transport.send(messages(1))
    finally:
        receiver.stop()


def test_tcp_receiver_down_is_a_retryable_error() -> None:
    receiver = SyslogTcpReceiver().start()
    port = receiver.port
    receiver.stop()
    transport = TcpSyslogTransport(HOST, port, timeout=2)
    with pytest.raises(TransportError) as info:
        transport.send(messages(1))
    assert not info.value.permanent


def test_udp_one_message_per_datagram() -> None:
    receiver = UdpReceiver()
    try:
        transport = UdpSyslogTransport(HOST, receiver.port)
        batch = messages(3)
        transport.send(batch)
        assert receiver.receive(3) == batch
        transport.close()
    finally:
        receiver.close()


def test_udp_refuses_an_oversized_message() -> None:
    with pytest.raises(TransportError) as info:
        UdpSyslogTransport(HOST, 9).send([b"x" * 70_000])
    assert info.value.permanent


def test_hec_posts_batches_with_the_token() -> None:
    receiver = HttpReceiver().start()
    try:
        hec = make_encoder("hec", SETTINGS)
        transport = HecTransport(f"http://{HOST}:{receiver.port}", "s3cret-token", timeout=5)
        events = [SiemEvent(sample_record(i), i, "00") for i in range(5)]
        transport.send([hec.encode(e) for e in events])
        path, headers, body = receiver.requests[0]
        assert path == "/services/collector/event"
        assert headers["Authorization"] == "Splunk s3cret-token"
        objects = [orjson.loads(line) for line in body.split(b"\n")]
        assert [o["event"]["seq"] for o in objects] == [0, 1, 2, 3, 4]
        assert all(o["sourcetype"] == "kzai_guard:audit" for o in objects)
        transport.close()
    finally:
        receiver.stop()


@pytest.mark.parametrize(("status", "permanent"), [(503, False), (429, False), (401, True)])
def test_http_status_decides_retry(status: int, permanent: bool) -> None:
    receiver = HttpReceiver(lambda n: (status, b'{"text":"no","code":9}')).start()
    try:
        transport = HttpTransport(f"http://{HOST}:{receiver.port}/hook", timeout=5)
        with pytest.raises(TransportError) as info:
            transport.send([b"{}"])
        assert info.value.permanent is permanent
        transport.close()
    finally:
        receiver.stop()


def test_hec_error_code_is_a_failure() -> None:
    receiver = HttpReceiver(lambda n: (200, b'{"text":"Invalid data format","code":6}')).start()
    try:
        transport = HecTransport(f"http://{HOST}:{receiver.port}", "t", timeout=5)
        with pytest.raises(TransportError, match="unexpected HEC answer"):
            transport.send([b"{}"])
        transport.close()
    finally:
        receiver.stop()


def test_webhook_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    receiver = HttpReceiver(lambda n: (204, b""), tls=server).start()
    try:
        destination = open_destination(
            f"https://{HOST}:{receiver.port}/ingest",
            make_encoder("jsonl", SETTINGS),
            token="abc",
            cafile=cert,
        )
        destination.deliver([SiemEvent(sample_record(i), i, "00") for i in range(3)])
        path, headers, _ = receiver.requests[0]
        assert path == "/ingest"
        assert headers["Authorization"] == "Bearer abc"
        assert headers["Content-Type"] == "application/x-ndjson"
        assert [d["seq"] for d in receiver.json_lines()] == [0, 1, 2]
        destination.close()
    finally:
        receiver.stop()


def test_file_transport_appends_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    transport = FileTransport(path)
    transport.send([b"a", b"b"])
    transport.send([b"c"])
    transport.close()
    assert path.read_bytes() == b"a\nb\nc\n"


def test_backoff_is_jittered_and_bounded() -> None:
    delays = Backoff(initial=0.1, maximum=1.0).delays()
    values = [next(delays) for _ in range(20)]
    assert all(0.05 <= v <= 1.0 for v in values)
    assert all(v >= 0.5 for v in values[10:])
    assert len(set(values)) > 1


@pytest.mark.parametrize("spec", ["ftp://x", "tcp://", "hec+https://127.0.0.1:8088"])
def test_bad_destination_specs_fail_at_configuration(spec: str) -> None:
    from kzai_guard.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        open_destination(spec, make_encoder("jsonl", SETTINGS))
