"""The OpenAPI document as the API really answers: every operation declares its problem responses (RFC 9457,
`application/problem+json`, with the `Problem` schema) and the resources it creates link to the operations that
take their ids, so schemathesis' stateful phase (and a client generator) can follow them."""

from __future__ import annotations

from typing import Any
# The problem document, as the OpenAPI schema declares it for every 4xx and 5xx (so schemathesis and clients can
# check the shape of errors, not only of successes).
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}, "type": {"type": ["string", "null"]},
            "line": {"type": "integer"}, "column": {"type": "integer"}}}},
    },
    "additionalProperties": True,
}
_WHY = {400: "Malformed request", 401: "Missing or invalid API key", 403: "The key's role may not do this",
        404: "Not found (or another tenant's)", 409: "Conflicts with the current state",
        413: "Body larger than the limit", 422: "Invalid input: `errors` names each field (or line and column)",
        429: "Too many requests: retry after `Retry-After`", 500: "Internal error: quote `request_id`",
        503: "A dependency (database, Temporal) is unavailable: retry after `Retry-After`"}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the problem responses each operation can give (FastAPI's generated 422 schema is not what the
    API answers): 401/403 where a key is required, 404 where the path names something, 409/413 where there is a
    body, 400/422 where there is input, 500 and 503 everywhere."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {500, 503}
            if operation.get("security") or "/webhooks/" in path:  # a key, or a provider's signature
                statuses |= {401, 403}
            if "{" in path or path.endswith("/me"):  # /users/me: a key that belongs to no user
                statuses.add(404)
            if "requestBody" in operation or method in ("post", "patch", "put"):
                statuses |= {400, 409, 413}
            if operation.get("parameters") or "requestBody" in operation:
                statuses.add(422)
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses[str(status)] = {"description": _WHY[status], "content": problem}
    return schema


# (operation that creates, its success statuses) -> {path parameter: where its value is in the response}
LINKS: dict[tuple[str, str], tuple[tuple[str, ...], dict[str, str]]] = {
    ("post", "/api/v1/leads"): (("201", "200"), {"lead_id": "$response.body#/id",
                                                 "workflow_id": "$response.body#/workflow_id"}),
    ("post", "/api/v1/investors"): (("201", "200"), {"investor_id": "$response.body#/id"}),
    ("post", "/api/v1/leads/{lead_id}/convert"): (("200",), {"opportunity_id": "$response.body#/opportunity_id"}),
    ("post", "/api/v1/definitions"): (("201",), {"key": "$response.body#/key",
                                                 "version": "$response.body#/version"}),
    ("post", "/api/v1/leads/{lead_id}/messages"): (("202",), {"workflow_id": "$response.body#/workflow_id"}),
    ("post", "/api/v1/users"): (("201",), {"user_id": "$response.body#/id"}),
    ("post", "/api/v1/tasks"): (("201",), {"task_id": "$response.body#/id"}),
}


def _pointer(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def link_resources(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI links from each creating operation to every operation whose path takes the ids it returns."""
    paths = schema.get("paths", {})
    for (method, source), (statuses, values) in LINKS.items():
        operation = paths.get(source, {}).get(method)
        if operation is None:
            continue
        links: dict[str, Any] = {}
        for target, operations in paths.items():
            takes = {name: value for name, value in values.items() if "{" + name + "}" in target}
            if not takes or target == source:
                continue
            for target_method in operations:
                name = (target_method + target.replace("/api/v1", "").replace("/", "_").replace("{", "")
                        .replace("}", ""))
                links[name] = {"operationRef": _pointer(target, target_method), "parameters": takes}
        for status in statuses:
            if status in operation.get("responses", {}):
                operation["responses"][status]["links"] = links
    return schema


def document(schema: dict[str, Any]) -> dict[str, Any]:
    return link_resources(document_problems(schema))
