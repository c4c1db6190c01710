"""The encoder for each wire format, by name."""

from __future__ import annotations

from typing import Protocol, Self

from kzai_guard.errors import ConfigurationError
from kzai_guard.siem._event import SiemEvent
from kzai_guard.siem.settings import EncoderSettings

__all__ = ["FORMATS", "Encoder", "SettingsEncoder", "make_encoder"]

FORMATS: tuple[str, ...] = ("cef", "leef", "syslog", "ocsf", "ecs", "hec", "jsonl")
"""The names :func:`make_encoder` accepts."""


class Encoder(Protocol):
    """Turns one event into one message: UTF-8 bytes, no line terminator, no line break."""

    format: str
    media_type: str

    def encode(self, event: SiemEvent) -> bytes:
        """The message for ``event``."""
        ...

    def for_log(self, origin: str | None) -> Encoder:
        """This encoder for events of the log named ``origin`` (see
        :meth:`EncoderSettings.for_log`); raises
        :class:`~kzai_guard.errors.ConfigurationError` if it was built for another origin."""
        ...


class SettingsEncoder:
    """What the built-in encoders share: they are built once from their :attr:`settings`."""

    format: str
    media_type: str

    def __init__(self, settings: EncoderSettings) -> None:
        self.settings = settings
        """The settings the encoder was built for."""

    def for_log(self, origin: str | None) -> Self:
        """The same encoder built for the log named ``origin``; itself if it already is."""
        settings = self.settings.for_log(origin)
        if settings.origin == self.settings.origin:
            return self
        return type(self)(settings)


def make_encoder(name: str, settings: EncoderSettings | None = None) -> Encoder:
    """The encoder for format ``name``, built once for ``settings``.

    >>> make_encoder("cef").format
    'cef'
    """
    settings = settings or EncoderSettings()
    if name == "cef":
        from kzai_guard.siem.cef import CefEncoder

        return CefEncoder(settings)
    if name == "leef":
        from kzai_guard.siem.leef import LeefEncoder

        return LeefEncoder(settings)
    if name == "syslog":
        from kzai_guard.siem.syslog import SyslogEncoder

        return SyslogEncoder(settings)
    if name == "ocsf":
        from kzai_guard.siem.ocsf import OcsfEncoder

        return OcsfEncoder(settings)
    if name == "ecs":
        from kzai_guard.siem.ecs import EcsEncoder

        return EcsEncoder(settings)
    if name == "hec":
        from kzai_guard.siem.hec import HecEncoder

        return HecEncoder(settings)
    if name == "jsonl":
        from kzai_guard.siem.jsonl import JsonLinesEncoder

        return JsonLinesEncoder(settings)
    raise ConfigurationError(f"unknown SIEM format {name!r}; choose one of {', '.join(FORMATS)}")
