"""Liveness of the pieces the API depends on, and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlmodel import Session

router = APIRouter(tags=["health"])


def _database_ok(engine) -> str:
    with Session(engine) as session:
        session.exec(text("SELECT 1"))
    return "ok"


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        checks["database"] = await asyncio.to_thread(_database_ok, request.app.state.engine)
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    try:
        await asyncio.wait_for(request.app.state.temporal.service_client.check_health(), timeout=3)
        checks["temporal"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["temporal"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks}
    if healthy:
        return JSONResponse(body)
    return JSONResponse({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                         "detail": "a dependency is unreachable", **body},
                        status_code=503, media_type="application/problem+json")


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
