"""Liveness of the pieces the API depends on and the event relay's backlog. (Prometheus metrics are not served
here, on the public port, but on their own bind address: core/metrics.py.)

200 `ok` when everything answers; 200 `degraded` naming the failing part when Temporal is down or the relay
lags (intake still works: leads are stored with their events and delivered later); 503 only when the
database, without which nothing is accepted, is down.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlmodel import Session

from models.event import backlog

router = APIRouter(tags=["health"])
RELAY_LAG_SECONDS = 60  # an undelivered event older than this means no relay is keeping up


def read_backlog(engine: Engine) -> tuple[int, float | None, int]:
    """(undelivered events, the oldest one's age in seconds, parked events): /health and the metrics' reading."""
    with Session(engine) as session:
        return backlog(session)


def _database(engine) -> dict:
    with Session(engine) as session:
        session.exec(text("SELECT 1"))
        count, oldest, parked = backlog(session)
    return {"backlog": count, "oldest_seconds": round(oldest, 3) if oldest is not None else None, "parked": parked}


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    relay: dict | None = None
    try:
        relay = await asyncio.to_thread(_database, request.app.state.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    try:
        await asyncio.wait_for(request.app.state.temporal.service_client.check_health(), timeout=3)
        checks["temporal"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["temporal"] = f"error: {exc.__class__.__name__}: {exc}"[:300] if str(exc) else \
            f"error: {exc.__class__.__name__} (no answer within 3 s)"
    if relay is not None:
        lagging = relay["oldest_seconds"] is not None and relay["oldest_seconds"] > RELAY_LAG_SECONDS
        checks["relay"] = (f"lagging: oldest undelivered event is {relay['oldest_seconds']:.0f} s old"
                           if lagging else "ok")
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks, "relay": relay}
    if checks["database"] == "ok":
        return JSONResponse(body)
    return JSONResponse({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                         "detail": "the database is unreachable", **body},
                        status_code=503, media_type="application/problem+json")
