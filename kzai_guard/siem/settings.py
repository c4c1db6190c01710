"""How encoders name the product, the host, the log and the private syslog namespace.

Settings are checked when they are made, so that a bad host name or SD-ID fails at start-up with
a message naming the field, not on the first event.
"""

from __future__ import annotations

import re
import socket
from importlib import metadata

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kzai_guard.errors import ConfigurationError

__all__ = ["EXAMPLE_ENTERPRISE_NUMBER", "EncoderSettings", "check_origin", "origin_of_log"]

EXAMPLE_ENTERPRISE_NUMBER = 32473
"""The IANA private enterprise number reserved for documentation (RFC 5612).

It is the placeholder default of :attr:`EncoderSettings.enterprise_number`; an organisation
that owns a number should set its own, so that its SD-ID (``kzai@<number>``) is unique.
"""

_PRINTUSASCII = re.compile(r"[!-~]+")
_LEEF_DELIMITERS = "\t^~!#$%&*+,/:;?@`"


def _version() -> str:
    try:
        return metadata.version("kzai-guard")
    except metadata.PackageNotFoundError:
        return "0"


class EncoderSettings(BaseModel):
    """Names every encoder writes into its events.

    >>> EncoderSettings(hostname="api-1.example.kz").sd_id
    'kzai@32473'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vendor: str = "kzai"
    """Device vendor (CEF, LEEF headers; OCSF ``metadata.product.vendor_name``)."""
    product: str = "kzai-guard"
    """Device product (CEF, LEEF headers, ECS ``service.name``, OCSF product name)."""
    product_version: str = Field(default_factory=_version)
    """Device version (CEF, LEEF headers)."""
    hostname: str = Field(default_factory=socket.gethostname)
    """The host the service runs on (syslog HOSTNAME, CEF ``dvchost``, ECS ``host.name``)."""
    app_name: str = "kzai-guard"
    """Syslog APP-NAME: 1-48 printable US-ASCII characters."""
    procid: str | None = None
    """Syslog PROCID (1-128 printable US-ASCII characters); ``None`` writes ``-``."""
    facility: int = Field(default=13, ge=0, le=23)
    """Syslog facility; 13 is *log audit*."""
    sd_name: str = "kzai"
    """The name part of the private syslog SD-ID ``<sd_name>@<enterprise_number>``."""
    enterprise_number: int = Field(default=EXAMPLE_ENTERPRISE_NUMBER, ge=1)
    """The IANA private enterprise number of the SD-ID; see :data:`EXAMPLE_ENTERPRISE_NUMBER`."""
    leef_delimiter: str = "\t"
    """The LEEF 2.0 attribute delimiter: tab, a backtick or one of ``^~!#$%&*+,/:;?@``."""
    hec_source: str = "kzai_guard"
    """Splunk HEC ``source``."""
    hec_sourcetype: str = "kzai_guard:audit"
    """Splunk HEC ``sourcetype``."""
    hec_index: str | None = None
    """Splunk HEC ``index``; ``None`` leaves it to the token's default index."""
    ocsf_version: str = "1.5.0"
    """The OCSF schema version written into ``metadata.version``."""
    origin: str | None = None
    """The origin of the log the events come from: the first line of its checkpoints.

    Written into every event (see :func:`check_origin` for what is accepted) so that a SIEM
    can tell the logs of several services apart and remove duplicates by ``(origin, seq,
    line_hash)``; ``None`` writes nothing. ``kzai-guard export``, ``kzai-guard ship`` and the
    :class:`~kzai_guard.siem.Shipper` set it from the log they read (:meth:`for_log`).
    """

    @field_validator("vendor", "product", "product_version", "hec_source", "hec_sourcetype")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value or not value.isprintable() or len(value) > 255:
            raise ValueError("must be 1-255 printable characters (no control characters)")
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        return _header_field(value, 255, "hostname")

    @field_validator("app_name")
    @classmethod
    def _app_name(cls, value: str) -> str:
        return _header_field(value, 48, "app_name")

    @field_validator("procid")
    @classmethod
    def _procid(cls, value: str | None) -> str | None:
        return None if value is None else _header_field(value, 128, "procid")

    @field_validator("sd_name")
    @classmethod
    def _sd_name(cls, value: str) -> str:
        if not _PRINTUSASCII.fullmatch(value) or any(c in value for c in '=]"@'):
            raise ValueError(
                "must be printable US-ASCII without space, '=', ']', '\"' or '@' "
                "(an RFC 5424 SD-NAME)"
            )
        return value

    @field_validator("leef_delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) != 1 or value not in _LEEF_DELIMITERS:
            raise ValueError(f"must be one character of {_LEEF_DELIMITERS!r}")
        return value

    @field_validator("hec_index")
    @classmethod
    def _index(cls, value: str | None) -> str | None:
        if value is not None and not _PRINTUSASCII.fullmatch(value):
            raise ValueError("must be printable US-ASCII without spaces")
        return value

    @field_validator("origin")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        return None if value is None else check_origin(value)

    @model_validator(mode="after")
    def _sd_id_length(self) -> EncoderSettings:
        if len(self.sd_id) > 32:
            raise ValueError(f"SD-ID {self.sd_id!r} is longer than 32 characters; shorten sd_name")
        return self

    @property
    def sd_id(self) -> str:
        """The private structured-data id, ``<sd_name>@<enterprise_number>``."""
        return f"{self.sd_name}@{self.enterprise_number}"

    def for_log(self, origin: str | None) -> EncoderSettings:
        """These settings with :attr:`origin` set to the origin of the log being read.

        An origin given before must be the log's own: raises
        :class:`~kzai_guard.errors.ConfigurationError` otherwise, so that events are never
        labelled with another log's name.

        >>> EncoderSettings(hostname="h").for_log("example.kz/audit").origin
        'example.kz/audit'
        """
        return self.model_copy(update={"origin": origin_of_log(self.origin, origin)})


def _header_field(value: str, limit: int, name: str) -> str:
    if not _PRINTUSASCII.fullmatch(value) or len(value) > limit:
        raise ValueError(
            f"{name} must be 1-{limit} printable US-ASCII characters without spaces (RFC 5424)"
        )
    return value


def check_origin(value: str) -> str:
    """``value`` if it is a valid log origin for events.

    An origin is one line of printable characters (``str.isprintable``: no control, format or
    separator characters, so nothing a text format would have to replace, and no bidirectional
    overrides) that is not blank. It is chosen by an operator but treated as untrusted: each
    format escapes it like record data. Raises :class:`~kzai_guard.errors.ConfigurationError`
    (a :class:`ValueError`) otherwise.

    >>> check_origin("example.kz/audit")
    'example.kz/audit'
    """
    if not value.strip() or not value.isprintable():
        raise ConfigurationError(
            "the log origin must be one line of printable characters (no control, format or "
            f"separator characters), not {value!r}"
        )
    return value


def origin_of_log(configured: str | None, of_log: str | None) -> str | None:
    """The origin events carry: the log's, checked against one ``configured`` before.

    Raises :class:`~kzai_guard.errors.ConfigurationError` when ``configured`` is set and is not
    the log's origin.
    """
    if configured is not None and configured != of_log:
        found = "has no origin" if of_log is None else f"has origin {of_log!r}"
        raise ConfigurationError(
            f"events were configured with origin {configured!r} but the log {found}; "
            "leave the origin unset: it is taken from the log"
        )
    return None if of_log is None else check_origin(of_log)
