"""Types of the C id maker (``_ids.c``); see :mod:`kzai_guard.ids`."""

def new_id() -> str:
    """A new UUIDv7 string."""
