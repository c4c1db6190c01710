"""ArcSight Common Event Format (CEF version 0).

``CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension``. The signature id is the
event kind, the name a fixed title (never record data), the severity 3/5/7/9 from the event's
:class:`~kzai_guard.siem.Level`. Escaping:

- header fields: ``\\`` becomes ``\\\\`` and ``|`` becomes ``\\|``;
- extension values: ``\\`` becomes ``\\\\``, ``=`` becomes ``\\=``, line feed ``\\n`` and carriage
  return ``\\r``;
- any other unsafe character (see :mod:`kzai_guard.siem._text`) becomes U+FFFD;
- empty strings are left out, like ``None``.

The log's origin (:attr:`EncoderSettings.origin <kzai_guard.siem.EncoderSettings.origin>`), when
set, is ``kzaiOrigin``, just before ``kzaiLineHash``. The extension always ends with
``cn1=<seq>``, so a line never ends in record data.
"""

from __future__ import annotations

from operator import attrgetter

from kzai_guard.audit.record import EventKind
from kzai_guard.siem._event import Level, SiemEvent, classify, classify_kind
from kzai_guard.siem._text import REPLACEMENT, UNSAFE
from kzai_guard.siem.formats import SettingsEncoder
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["CEF_SEVERITY", "CefEncoder", "escape_extension", "escape_header"]

CEF_SEVERITY: dict[Level, int] = {Level.INFO: 3, Level.NOTICE: 5, Level.WARNING: 7, Level.HIGH: 9}
"""CEF header severity (0-10) for each level."""

# (record field, CEF key, label or None); the order is the order on the wire.
_FIELDS: tuple[tuple[str, str, str | None], ...] = (
    ("verdict", "act", None),
    ("reason", "reason", None),
    ("detail", "msg", None),
    ("subject", "duser", None),
    ("reviewer", "suser", None),
    ("policy", "cs1", "policy"),
    ("purpose", "cs2", "purpose"),
    ("basis", "cs3", "basis"),
    ("model", "cs4", "model"),
    ("trace_id", "cs5", "traceId"),
    ("review_id", "cs6", "reviewId"),
    ("profile", "flexString1", "profile"),
    ("significance", "flexString2", "significance"),
    ("mode", "kzaiMode", None),
    ("autonomy", "kzaiAutonomy", None),
    ("policy_digest", "kzaiPolicyDigest", None),
    ("explanation_digest", "kzaiExplanationDigest", None),
    ("data_basis_digest", "kzaiDataBasisDigest", None),
    ("id", "kzaiRecordId", None),
)


class CefEncoder(SettingsEncoder):
    """Renders events as CEF lines; pure, built once per settings.

    >>> from kzai_guard.audit.record import AuditRecord, EventKind
    >>> enc = CefEncoder(EncoderSettings(hostname="h", product_version="1", origin="o.kz/a"))
    >>> rec = AuditRecord(id="r1", time=1_700_000_000_000_000, kind=EventKind.DECISION,
    ...                   verdict="block", reason="no=consent")
    >>> enc.render(SiemEvent(rec, 1, "ab"))  # doctest: +NORMALIZE_WHITESPACE
    'CEF:0|kzai|kzai-guard|1|decision|AI decision blocked|7|rt=1700000000000 externalId=r1:1
    cat=decision outcome=failure dvchost=h act=block reason=no\\\\=consent kzaiRecordId=r1
    kzaiOrigin=o.kz/a kzaiLineHash=ab cn1Label=seq cn1=1'
    """

    format = "cef"
    media_type = "text/plain"

    def __init__(self, settings: EncoderSettings) -> None:
        super().__init__(settings)
        names = (settings.vendor, settings.product, settings.product_version)
        self._prefix = "CEF:0|" + "".join(escape_header(name) + "|" for name in names)
        self._dvchost = " dvchost=" + escape_extension(settings.hostname)
        self._headers: dict[tuple[EventKind, str | None], str] = {}
        for kind in EventKind:
            for verdict in (None, "allow", "block", "route"):
                self._headers[kind, verdict] = self._header(kind, verdict)
        self._keys = tuple(
            f" {key}=" if label is None else f" {key}Label={label} {key}="
            for _, key, label in _FIELDS
        )
        self._values = attrgetter(*(name for name, _, _ in _FIELDS))
        origin = settings.origin
        self._line_hash_key = (
            " kzaiLineHash=" if origin is None else f" kzaiOrigin={_value(origin)} kzaiLineHash="
        )

    def _header(self, kind: EventKind, verdict: str | None) -> str:
        c = classify_kind(kind, verdict)
        return f"{self._prefix}{kind.value}|{escape_header(c.title)}|{CEF_SEVERITY[c.level]}|"

    def render(self, event: SiemEvent) -> str:
        """One CEF line, without a line terminator."""
        record = event.record
        header = self._headers.get((record.kind, record.verdict))
        if header is None:
            header = self._header(record.kind, record.verdict)
        parts = [
            header,
            "rt=",
            str(record.time // 1000),
            " externalId=",
            _value(event.uid),
            " cat=",
            record.kind.value,
            " outcome=",
            classify(record).outcome.value,
            self._dvchost,
        ]
        append = parts.append
        for key, value in zip(self._keys, self._values(record), strict=True):
            if value:
                append(key)
                append(_value(value))
        if record.latency_us is not None:
            append(" cn2Label=latencyUs cn2=")
            append(str(record.latency_us))
        append(self._line_hash_key)
        append(_value(event.line_hash) or REPLACEMENT)
        if not event.verified:
            append(" kzaiUnverified=true")
        append(" cn1Label=seq cn1=")
        append(str(event.seq))
        return "".join(parts)

    def encode(self, event: SiemEvent) -> bytes:
        """One CEF line as UTF-8 bytes, without a line terminator."""
        return self.render(event).encode()


def escape_header(value: str) -> str:
    """A CEF header field: ``\\`` and ``|`` escaped, unsafe characters replaced.

    >>> escape_header("a|b\\\\c")
    'a\\\\|b\\\\\\\\c'
    """
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    if value.isascii() and value.isprintable():
        return value
    return UNSAFE.sub(REPLACEMENT, value)


def escape_extension(value: str) -> str:
    """A CEF extension value: ``\\``, ``=`` and line breaks escaped, unsafe characters replaced.

    >>> escape_extension("a=b\\nc")
    'a\\\\=b\\\\nc'
    """
    return _value(value)


def _value(value: str) -> str:
    if value.isascii() and value.isprintable():
        if "\\" in value:
            value = value.replace("\\", "\\\\")
        if "=" in value:
            value = value.replace("=", "\\=")
        return value
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    value = value.replace("\n", "\\n").replace("\r", "\\r")
    return UNSAFE.sub(REPLACEMENT, value)
