"""Every 4xx/5xx is application/problem+json (RFC 9457), with the offending fields for 422s."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from core.logging import request_id_var
from core.temporal import temporal_unreachable
from services.acting import ServiceError
from temporalio.client import RPCTimeoutOrCancelledError

PROBLEM = "application/problem+json"
log = logging.getLogger("dealflow.api")


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.title = status, detail, title
        self.errors, self.headers, self.extra = errors, headers, extra


def as_problem(exc: Problem | ServiceError) -> Problem:
    """A staff service's refusal (services/acting.py: 404, 409, 403, 429 or a 422 naming its field) as a Problem."""
    if isinstance(exc, Problem):
        return exc
    errors = [{"field": exc.field, "message": str(exc)}] if exc.field else None
    retry = getattr(exc, "retry_after", None)
    return Problem(exc.status, str(exc), errors=errors, headers={"Retry-After": str(retry)} if retry else None)


def problem_response(status: int, detail: str, *, title: str | None = None,
                     errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if request_id_var.get():
        body["request_id"] = request_id_var.get()
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "property", "zip") -> "property.zip"; drop pydantic's model-level markers.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    @app.exception_handler(ServiceError)
    async def _problem(request: Request, exc: Problem | ServiceError):
        problem = as_problem(exc)
        page = getattr(request.app.state, "problem_page", None)  # the console answers its pages with a page
        if page is not None and (request.url.path.startswith("/app/") or request.url.path == "/app"):
            return page(request, problem)
        return problem_response(problem.status, problem.detail, title=problem.title, errors=problem.errors,
                                headers=problem.headers, **problem.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            message = err.get("msg", "invalid")
            errors.append({"field": _field(tuple(err.get("loc", ()))),
                           "message": message.removeprefix("Value error, "), "type": err.get("type")})
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(422, f"invalid request: {summary}", title="Validation failed", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLAlchemyTimeout)
    async def _busy(_: Request, exc: SQLAlchemyTimeout) -> JSONResponse:
        # Every database connection is in use (more requests than the pool): shed load, do not crash.
        log.warning("database pool exhausted: %s", exc)
        return problem_response(503, "the service is busy; retry shortly", title="Service Unavailable",
                                headers={"Retry-After": "1"})

    @app.exception_handler(RPCTimeoutOrCancelledError)
    async def _update_timed_out(_: Request, exc: RPCTimeoutOrCancelledError) -> JSONResponse:
        # An update (a stage move, an allocation) no worker answered in time: the worker is down or the move's
        # write is still retrying. The move may still happen: the client retries and sees the state.
        log.warning("Temporal update not answered in time: %s", exc)
        return problem_response(503, "the workflow did not answer in time (is the worker running?); retry shortly",
                                title="Service Unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(RPCError)
    @app.exception_handler(RuntimeError)
    async def _temporal(_: Request, exc: Exception) -> JSONResponse:
        # A route that needs Temporal's answer (a stage update, a workflow's state) while Temporal is down or
        # paused: 503 with Retry-After, never a 500. Anything else is a bug: re-raised for the 500 path.
        if not temporal_unreachable(exc):
            raise exc
        log.warning("Temporal unreachable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return problem_response(503, "Temporal is unavailable; retry shortly (leads, events and signals are "
                                     "still accepted)", title="Service Unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error: %s", exc)
        return problem_response(500, "internal error; quote the request id when reporting it")

