"""IBM QRadar Log Event Extended Format, version 2.0.

``LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|key=value<delimiter>key=value...``.
The event id is the event kind; the delimiter is a tab by default (written ``x09`` in the
header). LEEF defines no escaping, so values are sanitised instead:

- the attribute delimiter, and every unsafe character (see :mod:`kzai_guard.siem._text`; tab,
  line feed and carriage return included), becomes U+FFFD;
- in the header fields ``|`` also becomes U+FFFD;
- ``=`` needs nothing: a parser splits an attribute at its first ``=`` and keys are fixed;
- empty strings are left out, like ``None``.

Predefined attributes are used only with their LEEF meaning (``devTime`` with
``devTimeFormat``, ``cat``, ``sev``, ``usrName``, ``policy``); every other attribute is
prefixed ``kzai``. The log's origin, when set, is ``kzaiOrigin``, just before
``kzaiLineHash``; since LEEF cannot escape, an origin that contains the attribute delimiter is
refused when the encoder is built. The attributes always end with ``kzaiSeq=<seq>``.
"""

from __future__ import annotations

from operator import attrgetter

from kzai_guard.audit.record import EventKind
from kzai_guard.errors import ConfigurationError
from kzai_guard.siem._event import Level, SiemEvent, classify, classify_kind
from kzai_guard.siem._text import REPLACEMENT, UNSAFE, rfc3339
from kzai_guard.siem.formats import SettingsEncoder
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["LEEF_SEVERITY", "LEEF_TIME_FORMAT", "LeefEncoder", "sanitise_value"]

LEEF_SEVERITY: dict[Level, int] = {Level.INFO: 3, Level.NOTICE: 5, Level.WARNING: 7, Level.HIGH: 9}
"""LEEF ``sev`` (1-10) for each level."""

LEEF_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
"""The ``devTimeFormat`` (Java ``SimpleDateFormat``) of ``devTime``."""

# (record field, LEEF key); the order is the order on the wire.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("reviewer", "usrName"),
    ("policy", "policy"),
    ("verdict", "kzaiVerdict"),
    ("reason", "kzaiReason"),
    ("detail", "kzaiDetail"),
    ("subject", "kzaiSubject"),
    ("policy_digest", "kzaiPolicyDigest"),
    ("purpose", "kzaiPurpose"),
    ("profile", "kzaiProfile"),
    ("mode", "kzaiMode"),
    ("significance", "kzaiSignificance"),
    ("autonomy", "kzaiAutonomy"),
    ("basis", "kzaiBasis"),
    ("review_id", "kzaiReviewId"),
    ("explanation_digest", "kzaiExplanationDigest"),
    ("data_basis_digest", "kzaiDataBasisDigest"),
    ("model", "kzaiModel"),
    ("trace_id", "kzaiTraceId"),
    ("id", "kzaiRecordId"),
)


class LeefEncoder(SettingsEncoder):
    """Renders events as LEEF 2.0 lines; pure, built once per settings.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> enc = LeefEncoder(EncoderSettings(hostname="h", product_version="1", leef_delimiter="^"))
    >>> rec = AuditRecord(id="r1", time=1_700_000_000_000_000, kind=EventKind.DECISION,
    ...                   verdict="allow")
    >>> enc.render(SiemEvent(rec, 1, "ab"))  # doctest: +NORMALIZE_WHITESPACE
    "LEEF:2.0|kzai|kzai-guard|1|decision|^|devTime=2023-11-14T22:13:20.000Z^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSXXX^cat=decision^sev=3^kzaiOutcome=success^kzaiUid=r1:1^kzaiTimeUs=1700000000000000^kzaiVerdict=allow^kzaiRecordId=r1^kzaiLineHash=ab^kzaiSeq=1"
    """

    format = "leef"
    media_type = "text/plain"

    def __init__(self, settings: EncoderSettings) -> None:
        super().__init__(settings)
        delimiter = settings.leef_delimiter
        self._delimiter = delimiter
        shown = delimiter if delimiter.isprintable() else f"x{ord(delimiter):02X}"
        names = (settings.vendor, settings.product, settings.product_version)
        self._prefix = "LEEF:2.0|" + "".join(_header(name) + "|" for name in names)
        self._shown = shown
        self._time_format = f"{delimiter}devTimeFormat={LEEF_TIME_FORMAT}{delimiter}cat="
        self._sev: dict[tuple[EventKind, str | None], str] = {}
        for kind in EventKind:
            for verdict in (None, "allow", "block", "route"):
                c = classify_kind(kind, verdict)
                self._sev[kind, verdict] = (
                    f"{delimiter}sev={LEEF_SEVERITY[c.level]}{delimiter}kzaiOutcome={c.outcome.value}"
                )
        self._keys = tuple(f"{delimiter}{key}=" for _, key in _FIELDS)
        self._values = attrgetter(*(name for name, _ in _FIELDS))
        self._line_hash_key = f"{delimiter}kzaiLineHash="
        if settings.origin is not None:
            if delimiter in settings.origin:
                raise ConfigurationError(
                    f"the log origin {settings.origin!r} contains the LEEF attribute delimiter "
                    f"{delimiter!r}, which LEEF cannot escape; choose another leef_delimiter "
                    "(--leef-delimiter), such as the default tab"
                )
            origin = sanitise_value(settings.origin, delimiter)
            self._line_hash_key = f"{delimiter}kzaiOrigin={origin}{self._line_hash_key}"

    def render(self, event: SiemEvent) -> str:
        """One LEEF line, without a line terminator."""
        record = event.record
        d = self._delimiter
        sev = self._sev.get((record.kind, record.verdict))
        if sev is None:
            c = classify(record)
            sev = f"{d}sev={LEEF_SEVERITY[c.level]}{d}kzaiOutcome={c.outcome.value}"
        parts = [
            self._prefix,
            record.kind.value,
            "|",
            self._shown,
            "|devTime=",
            rfc3339(record.time)[:23],
            "Z",
            self._time_format,
            record.kind.value,
            sev,
            d,
            "kzaiUid=",
            self._value(event.uid),
            d,
            "kzaiTimeUs=",
            str(record.time),
        ]
        append = parts.append
        value_of = self._value
        for key, value in zip(self._keys, self._values(record), strict=True):
            if value:
                append(key)
                append(value_of(value))
        if record.latency_us is not None:
            append(f"{d}kzaiLatencyUs={record.latency_us}")
        append(self._line_hash_key)
        append(value_of(event.line_hash) or REPLACEMENT)
        if not event.verified:
            append(f"{d}kzaiUnverified=true")
        append(f"{d}kzaiSeq={event.seq}")
        return "".join(parts)

    def encode(self, event: SiemEvent) -> bytes:
        """One LEEF line as UTF-8 bytes, without a line terminator."""
        return self.render(event).encode()

    def _value(self, value: str) -> str:
        return sanitise_value(value, self._delimiter)


def sanitise_value(value: str, delimiter: str) -> str:
    """A LEEF attribute value: the delimiter and unsafe characters become U+FFFD.

    >>> sanitise_value("a^b\\tc", "^")
    'a\\ufffdb\\ufffdc'
    """
    if delimiter in value:
        value = value.replace(delimiter, REPLACEMENT)
    if value.isascii() and value.isprintable():
        return value
    return UNSAFE.sub(REPLACEMENT, value)


def _header(value: str) -> str:
    return UNSAFE.sub(REPLACEMENT, value.replace("|", REPLACEMENT))
