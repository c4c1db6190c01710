"""What a subject identifier may look like before the guard acts on it."""

from __future__ import annotations

__all__ = ["MAX_SUBJECT_LENGTH", "check_subject", "check_text"]

MAX_SUBJECT_LENGTH = 256


def check_subject(value: str) -> str:
    """``value`` if it is a usable subject identifier, else ``ValueError`` saying why.

    1 to 256 characters, no leading or trailing white space, nothing unprintable (control
    characters, lone surrogates, unassigned code points).
    """
    if not value:
        raise ValueError("the subject identifier is empty")
    if len(value) > MAX_SUBJECT_LENGTH:
        raise ValueError(f"the subject identifier is longer than {MAX_SUBJECT_LENGTH} characters")
    if value != value.strip():
        raise ValueError("the subject identifier has leading or trailing white space")
    if not value.isprintable():
        raise ValueError("the subject identifier contains control or unprintable characters")
    return value


def check_text(value: str, what: str, max_length: int, *, multiline: bool = False) -> str:
    """``value`` if it is 1 to ``max_length`` characters of printable text, else ``ValueError``.

    Every backend must store it alike, so NUL and other control characters are refused;
    ``multiline`` admits line breaks and tabs (free-text notes).
    """
    if not value or not value.strip():
        raise ValueError(f"{what} is empty")
    if len(value) > max_length:
        raise ValueError(f"{what} is longer than {max_length} characters")
    text = value.replace("\n", "").replace("\t", "") if multiline else value
    if not text.isprintable():
        raise ValueError(f"{what} contains control or unprintable characters")
    return value
