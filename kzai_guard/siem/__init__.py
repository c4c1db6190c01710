"""SIEM export and reliable shipping of the signed audit trail.

Encoders render one :class:`SiemEvent` (a verified log entry) in a SIEM's wire format: CEF,
LEEF 2.0, RFC 5424 syslog, OCSF API Activity, Elastic ECS, Splunk HEC and JSON Lines, plus
OpenTelemetry log records (:class:`OtelDestination`). Transports carry the encoded messages
(file, stdout, syslog over UDP/TCP/TLS, Splunk HEC, webhooks), and the :class:`Shipper` follows
the log and delivers it at least once, in order, surviving receiver outages and restarts.

>>> from kzai_guard.audit.record import AuditRecord, EventKind
>>> encoder = make_encoder("cef", EncoderSettings(hostname="api-1", product_version="1"))
>>> record = AuditRecord(id="r1", time=1_700_000_000_000_000, kind=EventKind.DECISION,
...                      verdict="allow")
>>> encoder.encode(SiemEvent(record, 0, "ab"))[:57]
b'CEF:0|kzai|kzai-guard|1|decision|AI decision allowed|3|rt'
"""

from kzai_guard.siem._event import Classification, Level, Outcome, SiemEvent, classify
from kzai_guard.siem.cursor import CursorError, CursorFile, Position
from kzai_guard.siem.destination import Destination, EncodedDestination, open_destination
from kzai_guard.siem.formats import FORMATS, Encoder, make_encoder
from kzai_guard.siem.otel import OtelDestination
from kzai_guard.siem.settings import EXAMPLE_ENTERPRISE_NUMBER, EncoderSettings
from kzai_guard.siem.shipper import Progress, Shipper
from kzai_guard.siem.transports import Backoff, Transport, TransportError

__all__ = [
    "EXAMPLE_ENTERPRISE_NUMBER",
    "FORMATS",
    "Backoff",
    "Classification",
    "CursorError",
    "CursorFile",
    "Destination",
    "EncodedDestination",
    "Encoder",
    "EncoderSettings",
    "Level",
    "OtelDestination",
    "Outcome",
    "Position",
    "Progress",
    "Shipper",
    "SiemEvent",
    "Transport",
    "TransportError",
    "classify",
    "make_encoder",
    "open_destination",
]
