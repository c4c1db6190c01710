"""The bits of RFC 8941 structured fields the guard reads and writes."""

from __future__ import annotations

__all__ = ["parse_boolean", "serialize_string"]


def parse_boolean(raw: bytes) -> bool | None:
    """An sf-boolean item (``?1`` / ``?0``, parameters allowed); ``None`` if it does not parse.

    RFC 8941 says a field that fails to parse is ignored, so ``None`` means "no signal".
    """
    text = raw.strip(b" \t")
    if text[:2] == b"?1":
        rest = text[2:]
        value = True
    elif text[:2] == b"?0":
        rest = text[2:]
        value = False
    else:
        return None
    if rest and not rest.startswith(b";"):
        return None
    return value


def serialize_string(value: str) -> str:
    """An sf-string: printable ASCII, with ``\\`` and ``"`` escaped; other characters dropped."""
    out = ['"']
    for ch in value:
        if ch in '\\"':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
    out.append('"')
    return "".join(out)
