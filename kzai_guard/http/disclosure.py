"""The ``AI-Disclosure`` response header (draft-abaris-aicdh): a structured-field dictionary."""

from __future__ import annotations

from kzai_guard.core.policy import ModelInfo
from kzai_guard.http.structured import serialize_string

__all__ = ["disclosure_header"]


def disclosure_header(model: ModelInfo | None, *, human_reviewed: bool) -> bytes:
    """``mode=machine-generated`` for a solely automated result, ``ai-originated`` when a human
    took the decision; ``model`` and ``provider`` when known."""
    members = ["mode=ai-originated" if human_reviewed else "mode=machine-generated"]
    if model is not None:
        members.append(f"model={serialize_string(model.label)}")
        if model.provider:
            members.append(f"provider={serialize_string(model.provider)}")
    return ", ".join(members).encode("ascii")
