"""RFC 9457 problem details for every refusal."""

from __future__ import annotations

from typing import Any

import orjson

from kzai_guard.core.problems import ProblemType

__all__ = ["PROBLEM_CONTENT_TYPE", "as_sentence", "problem_body"]

PROBLEM_CONTENT_TYPE = b"application/problem+json"


def problem_body(base: str, problem: ProblemType, detail: str, **extensions: Any) -> bytes:
    """The JSON document of one problem; ``None`` extension members are left out."""
    body: dict[str, Any] = {
        "type": base + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    return orjson.dumps(body)


def as_sentence(text: str) -> str:
    """An error message as a problem's ``detail``: capitalised, ending with a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
