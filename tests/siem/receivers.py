"""Real receivers on 127.0.0.1 for transport and shipper tests: syslog TCP/TLS/UDP and HTTP."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class SyslogTcpReceiver:
    """Octet-counted syslog over TCP, or TLS given a server context; keeps every message."""

    def __init__(self, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.messages: list[bytes] = []
        self.tls = tls
        self.port = port
        self._lock = threading.Lock()
        self._server: _Server | None = None

    def start(self) -> SyslogTcpReceiver:
        receiver = self
        self._stopping = threading.Event()
        self._active = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: Any = self.request
                if receiver.tls is not None:
                    try:
                        sock = receiver.tls.wrap_socket(sock, server_side=True)
                    except (OSError, ssl.SSLError):
                        return
                with receiver._lock:
                    receiver._active += 1
                try:
                    self._frames(sock)
                finally:
                    if sock is not self.request:
                        sock.close()
                    with receiver._lock:
                        receiver._active -= 1

            def _frames(self, sock: Any) -> None:
                sock.settimeout(0.05)
                buffer = b""
                while True:
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        if receiver._stopping.is_set():
                            return
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                    while b" " in buffer:
                        length, _, rest = buffer.partition(b" ")
                        size = int(length)
                        if len(rest) < size:
                            break
                        with receiver._lock:
                            receiver.messages.append(rest[:size])
                        buffer = rest[size:]

        self._server = _Server((HOST, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and close every connection once it is idle."""
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            wait_until(lambda: self._active == 0, 5)

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.messages)


class UdpReceiver:
    """Keeps every datagram sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]

    def receive(self, count: int) -> list[bytes]:
        return [self.sock.recv(65536) for _ in range(count)]

    def close(self) -> None:
        self.sock.close()


class HttpReceiver:
    """An HTTP endpoint that records requests; ``answer`` decides each response."""

    def __init__(
        self,
        answer: Callable[[int], tuple[int, bytes]] | None = None,
        *,
        delay: float = 0.0,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answer = answer or (lambda n: (200, b'{"text":"Success","code":0}'))
        self.delay = delay
        self.port = port
        self.tls = tls
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> HttpReceiver:
        receiver = self
        stopping = self._stopping = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 1.0

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if stopping.is_set():
                    self.close_connection = True
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    n = len(receiver.requests)
                    status, payload = receiver.answer(n)
                    if 200 <= status < 300:
                        receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server((HOST, self.port), Handler)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop: requests on connections still open get no answer."""
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [body for _, _, body in self.requests]

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for body in self.bodies() for line in body.splitlines() if line]


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``condition`` every 20 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
