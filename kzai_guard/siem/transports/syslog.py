"""Syslog transports: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).

UDP sends one message per datagram and has no acknowledgement: a lost datagram is lost. TCP and
TLS frame every message by octet counting (``LEN SP MSG``), the only framing that is safe for any
content. Syslog over TCP has no application-level acknowledgement either; on Linux :meth:`send`
returns only after the receiving host has acknowledged every byte of the batch at the TCP level
(the socket's unacknowledged send queue is empty) and the connection is still open, so a
receiver that goes away mid-batch makes the batch fail and be sent again.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from collections.abc import Sequence
from pathlib import Path

from kzai_guard.siem.transports._base import TransportError

__all__ = [
    "MAX_UDP_PAYLOAD",
    "TcpSyslogTransport",
    "UdpSyslogTransport",
    "octet_counted",
    "tls_context",
]

MAX_UDP_PAYLOAD = 65507
"""The largest message one IPv4 UDP datagram carries."""

try:
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # pragma: no cover - not Linux
    _OUTQ = None


def octet_counted(messages: Sequence[bytes]) -> bytes:
    """The batch in octet-counting framing: ``LEN SP MSG`` for each message.

    >>> octet_counted([b"<14>1 - - - - - -", b"x"])
    b'17 <14>1 - - - - - -1 x'
    """
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


def tls_context(
    *,
    cafile: str | Path | None = None,
    insecure: bool = False,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
) -> ssl.SSLContext:
    """A client TLS context: TLS 1.2 or later, the receiver's certificate checked.

    ``cafile`` trusts a private CA (or a self-signed receiver certificate); ``insecure`` turns
    verification off and is meant for tests only; ``certfile``/``keyfile`` present a client
    certificate (mutual TLS, as RFC 5425 recommends).
    """
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile is not None:
        context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    return context


class UdpSyslogTransport:
    """One syslog message per UDP datagram (RFC 5426); fire and forget."""

    def __init__(self, host: str, port: int = 514) -> None:
        self.address = (host, port)
        self._sock: socket.socket | None = None

    def send(self, messages: Sequence[bytes]) -> None:
        """Send each message as one datagram."""
        for message in messages:
            if len(message) > MAX_UDP_PAYLOAD:
                raise TransportError(
                    f"a {len(message)}-byte message does not fit a UDP datagram; use tcp:// or "
                    "tls://",
                    permanent=True,
                )
        try:
            if self._sock is None:
                family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
                self._sock.connect(self.address)
            for message in messages:
                self._sock.send(message)
        except OSError as exc:
            self.close()
            raise TransportError(f"syslog/udp to {_where(self.address)}: {exc}") from exc

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class TcpSyslogTransport:
    """Octet-counted syslog over TCP (RFC 6587), or over TLS (RFC 5425) given ``tls``.

    ``server_hostname`` is the name checked against the receiver's certificate (default: host).
    """

    def __init__(
        self,
        host: str,
        port: int = 601,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.address = (host, port)
        self._tls = tls
        self._server_hostname = server_hostname or host
        self._timeout = timeout
        self._sock: socket.socket | None = None

    def send(self, messages: Sequence[bytes]) -> None:
        """Send the batch and wait until the receiver acknowledged every byte."""
        payload = octet_counted(messages)
        try:
            sock = self._connect()
            sock.sendall(payload)
            self._confirm(sock)
        except (OSError, TransportError) as exc:
            self.close()
            scheme = "tls" if self._tls else "tcp"
            raise TransportError(f"syslog/{scheme} to {_where(self.address)}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(self.address, timeout=self._timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                try:
                    sock = self._tls.wrap_socket(sock, server_hostname=self._server_hostname)
                except BaseException:
                    sock.close()
                    raise
            self._sock = sock
        return self._sock

    def _confirm(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + self._timeout
        pause = 0.0005
        while _OUTQ is not None:
            pending = struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
            if pending == 0:
                break
            if time.monotonic() > deadline:
                raise TransportError(f"{pending} bytes not acknowledged within {self._timeout}s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            # TLS 1.3 session tickets also make the socket readable; only EOF means closed.
            sock.setblocking(False)
            try:
                data: bytes | None = sock.recv(4096)
            except (ssl.SSLWantReadError, BlockingIOError):
                data = None
            finally:
                sock.settimeout(self._timeout)
            if data == b"":
                raise TransportError("the receiver closed the connection")


def _where(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"
