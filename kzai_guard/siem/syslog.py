"""RFC 5424 syslog with the event in structured data under a private SD-ID.

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [kzai@32473 uid="..." ...] MSG``:

- PRI is ``facility * 8 + severity``, the severity from the event's level (INFO 6, NOTICE 5,
  WARNING 4, HIGH 3);
- TIMESTAMP is the record time in UTC with six fractional digits; HOSTNAME, APP-NAME and PROCID
  come from :class:`~kzai_guard.siem.EncoderSettings` (checked there: printable US-ASCII within
  the RFC's length limits, ``-`` for an empty PROCID); MSGID is the event kind;
- the SD-ID is ``<sd_name>@<enterprise_number>``; parameter names are the record field names
  plus ``uid``, ``seq``, ``line_hash``, ``origin`` (the log's origin, when set) and
  ``outcome``. In a PARAM-VALUE ``"``, ``\\`` and ``]`` are escaped with a backslash and every
  unsafe character (see :mod:`kzai_guard.siem._text`) becomes U+FFFD;
- MSG is the fixed title of the event (US-ASCII, never record data).
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter

from kzai_guard.audit.record import AuditRecord
from kzai_guard.siem._event import Level, SiemEvent, classify
from kzai_guard.siem._text import REPLACEMENT, UNSAFE, rfc3339
from kzai_guard.siem.formats import SettingsEncoder
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["SYSLOG_SEVERITY", "SyslogEncoder", "escape_param_value"]

SYSLOG_SEVERITY: dict[Level, int] = {
    Level.INFO: 6,
    Level.NOTICE: 5,
    Level.WARNING: 4,
    Level.HIGH: 3,
}
"""RFC 5424 severity (0 emergency - 7 debug) for each level."""

_STRING_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(AuditRecord) if f.name not in ("time", "kind", "latency_us")
)


class SyslogEncoder(SettingsEncoder):
    """Renders events as RFC 5424 messages; pure, built once per settings.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> enc = SyslogEncoder(EncoderSettings(hostname="api-1", product_version="1"))
    >>> rec = AuditRecord(id="r1", time=1_700_000_000_000_000, kind=EventKind.DECISION,
    ...                   verdict="route", reason='a "quoted" ]')
    >>> enc.render(SiemEvent(rec, 1, "ab"))  # doctest: +NORMALIZE_WHITESPACE
    '<109>1 2023-11-14T22:13:20.000000Z api-1 kzai-guard - decision [kzai@32473 uid="r1:1"
    seq="1" line_hash="ab" outcome="unknown" time="1700000000000000" kind="decision" id="r1"
    verdict="route" reason="a \\\\"quoted\\\\" \\\\]"] AI decision routed to human review'
    """

    format = "syslog"
    media_type = "text/plain"

    def __init__(self, settings: EncoderSettings) -> None:
        super().__init__(settings)
        self._pri = {
            level: f"<{settings.facility * 8 + severity}>1 "
            for level, severity in SYSLOG_SEVERITY.items()
        }
        self._middle = f" {settings.hostname} {settings.app_name} {settings.procid or '-'} "
        self._sd_open = f' [{settings.sd_id} uid="'
        self._keys = tuple(f'" {name}="' for name in _STRING_FIELDS)
        self._values = attrgetter(*_STRING_FIELDS)
        origin = settings.origin
        self._outcome_key = (
            '" outcome="' if origin is None else f'" origin="{_value(origin)}" outcome="'
        )

    def render(self, event: SiemEvent) -> str:
        """One syslog message, without framing or line terminator."""
        record = event.record
        c = classify(record)
        kind = record.kind.value
        parts = [
            self._pri[c.level],
            rfc3339(record.time),
            self._middle,
            kind,
            self._sd_open,
            _value(event.uid),
            '" seq="',
            str(event.seq),
            '" line_hash="',
            _value(event.line_hash),
            self._outcome_key,
            c.outcome.value,
            '" time="',
            str(record.time),
            '" kind="',
            kind,
        ]
        append = parts.append
        for key, value in zip(self._keys, self._values(record), strict=True):
            if value is not None:
                append(key)
                append(_value(value))
        if record.latency_us is not None:
            append('" latency_us="')
            append(str(record.latency_us))
        if not event.verified:
            append('" unverified="true')
        append('"] ')
        append(c.title)
        return "".join(parts)

    def encode(self, event: SiemEvent) -> bytes:
        """One syslog message as UTF-8 bytes, without framing or line terminator."""
        return self.render(event).encode()


def escape_param_value(value: str) -> str:
    """An SD PARAM-VALUE: ``"``, ``\\`` and ``]`` escaped, unsafe characters replaced.

    >>> escape_param_value('a"b]c\\\\')
    'a\\\\"b\\\\]c\\\\\\\\'
    """
    return _value(value)


def _value(value: str) -> str:
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if '"' in value:
        value = value.replace('"', '\\"')
    if "]" in value:
        value = value.replace("]", "\\]")
    if value.isascii() and value.isprintable():
        return value
    return UNSAFE.sub(REPLACEMENT, value)
