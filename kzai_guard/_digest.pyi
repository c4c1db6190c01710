"""Types of the C digest (``_digest.c``); see :mod:`kzai_guard.digest`."""

def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data``, as lowercase hex."""
