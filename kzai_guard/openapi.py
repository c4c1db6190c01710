"""FastAPI: list each decision endpoint's refusals (202, 400, 403, 500, 503) in its OpenAPI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kzai_guard.guard import Guard

__all__ = ["PROBLEM_SCHEMA", "document_refusals"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "decision_id": {"type": "string"},
        "review_id": {"type": "string"},
    },
}
"""The JSON schema of every kzai_guard problem document (RFC 9457)."""
_REFUSALS = {
    "202": "Routed to a human reviewer (problem type human-review; Location names the ticket)",
    "400": "The request names no usable subject (subject-missing, subject-invalid)",
    "403": "No consent or legal basis for a solely automated decision (no-legal-basis)",
    "500": "Decision withheld: no valid explanation (explanation-missing, explanation-invalid)",
    "503": (
        "Decision type suspended, the audit trail or the store's facts unavailable "
        "(suspended, audit-unavailable, facts-unavailable)"
    ),
}


def document_refusals(app: Any, guard: Guard) -> None:
    """Wrap ``app.openapi`` so that every guarded operation lists the guard's answers."""
    from kzai_guard.guard import POLICY_ATTRIBUTE

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            schema: dict[str, Any] = app.openapi_schema
            return schema
        schema = original()
        guarded = {
            (getattr(route, "path_format", route.path), method.lower())
            for route in app.routes
            if getattr(getattr(route, "endpoint", None), POLICY_ATTRIBUTE, None)
            for method in getattr(route, "methods", ())
        }
        schema.setdefault("components", {}).setdefault("schemas", {})["KzaiGuardProblem"] = (
            PROBLEM_SCHEMA
        )
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (path, method) not in guarded:
                    continue
                responses = operation.setdefault("responses", {})
                for status, description in _REFUSALS.items():
                    responses.setdefault(
                        status,
                        {
                            "description": description,
                            "content": {
                                "application/problem+json": {
                                    "schema": {"$ref": "#/components/schemas/KzaiGuardProblem"}
                                }
                            },
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
