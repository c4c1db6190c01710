"""Transports: how encoded messages reach a receiver.

Each transport makes one attempt per :meth:`~Transport.send` and raises
:class:`TransportError` when the batch may not have arrived; retrying (with :class:`Backoff`) is
the caller's job, so that the shipper decides what happens during an outage.
"""

from kzai_guard.siem.transports._base import Backoff, Transport, TransportError
from kzai_guard.siem.transports.stream import FileTransport, StdoutTransport
from kzai_guard.siem.transports.syslog import (
    MAX_UDP_PAYLOAD,
    TcpSyslogTransport,
    UdpSyslogTransport,
    octet_counted,
    tls_context,
)
from kzai_guard.siem.transports.web import HEC_EVENT_PATH, HecTransport, HttpTransport

__all__ = [
    "HEC_EVENT_PATH",
    "MAX_UDP_PAYLOAD",
    "Backoff",
    "FileTransport",
    "HecTransport",
    "HttpTransport",
    "StdoutTransport",
    "TcpSyslogTransport",
    "Transport",
    "TransportError",
    "UdpSyslogTransport",
    "octet_counted",
    "tls_context",
]
