"""The sanitising rule shared by the line-based text formats, and time formatting.

The rule, applied to every value that goes into CEF, LEEF or syslog text:

- characters the format can escape are escaped (see each encoder);
- every other *unsafe* character is replaced by U+FFFD (the replacement character). Unsafe are
  the C0 controls U+0000-U+001F (NUL, tab, line feed, carriage return, ...), DEL U+007F, the C1
  controls U+0080-U+009F (NEL U+0085 included), the line and paragraph separators U+2028 and
  U+2029, and lone surrogates U+D800-U+DFFF (which cannot be written as UTF-8).

So no value can end a line, start a new event, or smuggle a byte a receiver would treat as a
terminator. Printable ASCII strings take a fast path that does no more than ``str.replace`` for
the format's escape characters.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["REPLACEMENT", "UNSAFE", "rfc3339", "sanitise"]

REPLACEMENT = "\ufffd"
"""What an unsafe character becomes."""

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""The characters no text format lets through (see the module docstring)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sanitise(value: str) -> str:
    """``value`` with every unsafe character replaced by U+FFFD.

    >>> sanitise("a\\nb\\x00c")
    'a\\ufffdb\\ufffdc'
    """
    if value.isascii() and value.isprintable():
        return value
    return UNSAFE.sub(REPLACEMENT, value)


def rfc3339(time_us: int) -> str:
    """Unix microseconds as an RFC 3339 UTC timestamp with six fractional digits.

    >>> rfc3339(1_700_000_000_123_456)
    '2023-11-14T22:13:20.123456Z'
    """
    global _last
    seconds, micros = divmod(time_us, 1_000_000)
    last = _last
    if last[0] == seconds:
        return f"{last[1]}.{micros:06d}Z"
    prefix = (_EPOCH + timedelta(seconds=seconds)).isoformat()[:19]
    _last = (seconds, prefix)
    return f"{prefix}.{micros:06d}Z"


# (Unix second, its "YYYY-MM-DDTHH:MM:SS"): events come in time order, so most share a second.
_last: tuple[int, str] = (-(2**63), "")
