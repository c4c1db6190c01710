"""Where the shipper sends events: an encoder and a transport, or OpenTelemetry.

:func:`open_destination` turns a ``--to`` spec into a :class:`Destination`:

=============================  =======================================================
``-`` or ``stdout:``           standard output
``file:PATH`` or a plain path  append to a file (``fsync`` per batch)
``udp://HOST[:514]``           syslog over UDP (RFC 5426)
``tcp://HOST[:601]``           syslog over TCP, octet counting (RFC 6587)
``tls://HOST[:6514]``          syslog over TLS, octet counting (RFC 5425)
``hec+https://HOST[:8088]``    Splunk HEC (also ``hec+http://``); needs a token
``https://...``, ``http://``   generic webhook, newline-delimited messages per ``POST``
``otel:``                      OpenTelemetry log records (the format is ignored)
=============================  =======================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from kzai_guard.errors import ConfigurationError
from kzai_guard.siem._event import SiemEvent
from kzai_guard.siem.formats import Encoder
from kzai_guard.siem.transports import (
    FileTransport,
    HecTransport,
    HttpTransport,
    StdoutTransport,
    TcpSyslogTransport,
    Transport,
    UdpSyslogTransport,
    tls_context,
)

__all__ = ["Destination", "EncodedDestination", "open_destination"]


class Destination(Protocol):
    """Takes batches of events; raises :class:`~kzai_guard.siem.TransportError` on failure."""

    def deliver(self, events: Sequence[SiemEvent]) -> None:
        """Deliver ``events`` in order (all of them, or raise)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    def for_log(self, origin: str | None) -> Destination:
        """This destination with every event carrying the origin of the log it ships.

        The :class:`~kzai_guard.siem.Shipper` calls it with the log's origin before shipping;
        raises :class:`~kzai_guard.errors.ConfigurationError` if the destination was made for
        another origin.
        """
        ...


class EncodedDestination:
    """Encodes each event with ``encoder`` and sends the batch with ``transport``."""

    def __init__(self, encoder: Encoder, transport: Transport) -> None:
        self.encoder = encoder
        self.transport = transport

    def deliver(self, events: Sequence[SiemEvent]) -> None:
        """Encode and send the batch."""
        encode = self.encoder.encode
        self.transport.send([encode(e) for e in events])

    def close(self) -> None:
        """Close the transport."""
        self.transport.close()

    def for_log(self, origin: str | None) -> EncodedDestination:
        """The same transport with the encoder built for the log named ``origin``."""
        encoder = self.encoder.for_log(origin)
        return self if encoder is self.encoder else EncodedDestination(encoder, self.transport)


def open_destination(
    spec: str,
    encoder: Encoder,
    *,
    token: str | None = None,
    cafile: str | Path | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
    durable: bool = True,
) -> Destination:
    """The destination for a ``--to`` spec (see the module docstring).

    >>> from kzai_guard.siem.formats import make_encoder
    >>> open_destination("tcp://127.0.0.1:6601", make_encoder("syslog")).transport.address
    ('127.0.0.1', 6601)
    """
    if spec in ("-", "stdout:", "stdout"):
        return EncodedDestination(encoder, StdoutTransport())
    if spec == "otel:":
        from kzai_guard.siem.otel import OtelDestination

        return OtelDestination()
    if spec.startswith("file:"):
        path = spec[len("file://") :] if spec.startswith("file://") else spec[len("file:") :]
        return EncodedDestination(encoder, FileTransport(path, durable=durable))
    parts = urlsplit(spec)
    scheme = parts.scheme
    if not scheme or len(scheme) == 1:
        return EncodedDestination(encoder, FileTransport(spec, durable=durable))
    host = parts.hostname
    if not host:
        raise ConfigurationError(f"{spec!r} names no host")
    if scheme == "udp":
        return EncodedDestination(encoder, UdpSyslogTransport(host, parts.port or 514))
    if scheme in ("tcp", "tls"):
        tls = tls_context(cafile=cafile, insecure=insecure) if scheme == "tls" else None
        default = 6514 if scheme == "tls" else 601
        return EncodedDestination(
            encoder, TcpSyslogTransport(host, parts.port or default, tls=tls, timeout=timeout)
        )
    if scheme in ("hec+https", "hec+http"):
        if not token:
            raise ConfigurationError(f"{spec!r} needs a Splunk HEC token (--token-env)")
        url = spec[len("hec+") :]
        tls = tls_context(cafile=cafile, insecure=insecure) if scheme == "hec+https" else None
        return EncodedDestination(encoder, HecTransport(url, token, tls=tls, timeout=timeout))
    if scheme in ("http", "https"):
        headers = {"Authorization": f"Bearer {token}"} if token else None
        tls = tls_context(cafile=cafile, insecure=insecure) if scheme == "https" else None
        return EncodedDestination(
            encoder,
            HttpTransport(
                spec, headers=headers, content_type=encoder.media_type, tls=tls, timeout=timeout
            ),
        )
    raise ConfigurationError(
        f"unknown destination {spec!r}; use -, file:PATH, udp://, tcp://, tls://, hec+https://, "
        "https:// or otel:"
    )
