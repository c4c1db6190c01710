"""What a subject identifier may look like before the guard acts on it."""

from __future__ import annotations

__all__ = ["MAX_SUBJECT_LENGTH", "check_subject"]

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
