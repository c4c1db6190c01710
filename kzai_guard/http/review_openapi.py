"""FastAPI: the reviewer's API in the app's OpenAPI schema, with a problem type per refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kzai_guard.core import problems
from kzai_guard.core.problems import ProblemType

if TYPE_CHECKING:
    from kzai_guard.guard import Guard

__all__ = ["document_review_api", "review_api_paths"]

_PROBLEM_REF = {"$ref": "#/components/schemas/KzaiGuardProblem"}
_AUTH = (problems.REVIEWER_REQUIRED, problems.REVIEWER_FORBIDDEN)
_POST = (*_AUTH, problems.JSON_REQUIRED, problems.BAD_REQUEST, problems.NOT_FOUND)
_TICKET = {
    "type": "object",
    "properties": {
        name: {"type": ["string", "null"] if name not in ("overdue",) else "boolean"}
        for name in (
            "id",
            "decision_id",
            "policy",
            "reason",
            "status",
            "opened_at",
            "deadline",
            "overdue",
            "reviewer",
            "outcome",
            "note",
            "completed_at",
        )
    },
}
_OPERATIONS: list[tuple[str, str, str, tuple[ProblemType, ...], tuple[str, ...]]] = [
    ("get", "/queue", "Review tickets by soonest deadline, filtered and paged", _AUTH, ()),
    ("get", "/tickets/{review_id}", "A ticket's case", (*_AUTH, problems.NOT_FOUND), ()),
    (
        "post",
        "/tickets/{review_id}/claim",
        "Claim a ticket for the lease time",
        (*_POST, problems.CLAIM_CONFLICT, problems.REVIEW_CLOSED),
        (),
    ),
    (
        "post",
        "/tickets/{review_id}/release",
        "Give a claimed ticket back",
        (*_POST, problems.CLAIM_REQUIRED, problems.REVIEW_CLOSED),
        (),
    ),
    (
        "post",
        "/tickets/{review_id}/decision",
        "Decide a claimed ticket",
        (*_POST, problems.CLAIM_REQUIRED, problems.REVIEW_CLOSED),
        ("outcome", "reason"),
    ),
    (
        "post",
        "/tickets/{review_id}/escalation",
        "Pass a ticket up, releasing it",
        (*_POST, problems.CLAIM_CONFLICT, problems.REVIEW_CLOSED),
        ("reason",),
    ),
    (
        "post",
        "/decisions/{decision_id}/override",
        "Correct or cancel an automated decision of a medium-autonomy policy",
        (*_POST, problems.OVERRIDE_FORBIDDEN),
        ("action", "reason"),
    ),
]
_QUEUE_PARAMETERS: list[dict[str, Any]] = [
    {"name": name, "in": "query", "required": False, "schema": schema}
    for name, schema in (
        ("status", {"type": "string", "enum": ["open", "completed", "all"]}),
        ("policy", {"type": "string"}),
        ("due", {"type": "string", "enum": ["overdue"]}),
        ("due_before", {"type": "string", "format": "date-time"}),
        ("page", {"type": "integer", "minimum": 1}),
        ("per_page", {"type": "integer", "minimum": 1, "maximum": 100}),
    )
]


def review_api_paths(prefix: str) -> dict[str, dict[str, Any]]:
    """OpenAPI path items of the reviewer's API under ``prefix``."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, refusals, fields in _OPERATIONS:
        operation: dict[str, Any] = {
            "tags": ["human review"],
            "summary": summary,
            "responses": {"200": {"description": "Done", "content": _json(_TICKET)}},
        }
        for problem in refusals:
            operation["responses"].setdefault(
                str(problem.status),
                {
                    "description": "",
                    "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
                },
            )
            described = operation["responses"][str(problem.status)]
            if problem.status == 401:
                described["headers"] = {
                    "WWW-Authenticate": {
                        "description": "The challenge of the app's authentication "
                        "(the guard's reviewer_challenge)",
                        "schema": {"type": "string"},
                    }
                }
            described["description"] = " or ".join(
                filter(None, (described["description"], f"{problem.slug}: {problem.title}"))
            )
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in ("review_id", "decision_id")
            if "{" + name + "}" in path
        ]
        if path == "/queue":
            parameters += _QUEUE_PARAMETERS
        operation["parameters"] = parameters
        if method == "post":
            operation["requestBody"] = {
                "required": True,
                "content": _json(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {name: {"type": "string"} for name in fields},
                    }
                ),
            }
        paths.setdefault(prefix + path, {})[method] = operation
    return paths


def document_review_api(app: Any, guard: Guard) -> None:
    """Wrap ``app.openapi`` so that the schema lists the reviewer's API."""
    from kzai_guard.openapi import PROBLEM_SCHEMA

    prefix = guard.settings.reviews_prefix
    if prefix is None:
        return
    inner = app.openapi

    def openapi() -> dict[str, Any]:
        schema: dict[str, Any] = inner()
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "KzaiGuardProblem", PROBLEM_SCHEMA
        )
        for path, item in review_api_paths(prefix).items():
            schema.setdefault("paths", {}).setdefault(path, item)
        return schema

    app.openapi = openapi


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
