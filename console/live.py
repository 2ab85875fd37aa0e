"""Live pages: server-sent events on the event path. A page that shows a lead, a deal, an investor, the board, call
next or the inbox listens to /app/live?topic=...; the stream says `change` whenever an event about what the page
shows is committed to the events table (the same rows the relay delivers to the workflows: a change and its event
commit together, so a page that re-reads on `change` sees the change), and the page re-reads its regions
(console.js).

One short read a second per open page: the events written since the last read (a range of the primary key), the
tenant's filtered here. (An event whose insert took its number before an earlier-numbered one committed can be
missed: the page then catches up with the next change; nothing is lost, the page is only a view.) A stream lasts a
few minutes at most; the browser reconnects by itself (EventSource), and each connection is signed in again."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.errors import Problem
from api.security import SESSION_COOKIE
from console.auth import SignedIn
from services.staff_sessions import session_principal

router = APIRouter(prefix="/app", include_in_schema=False)

POLL_SECONDS = 1.0
STREAM_SECONDS = 300.0  # then the browser reconnects (and is signed in again)
HEARTBEAT_SECONDS = 15.0
SESSION_CHECK_POLLS = 15  # the session is read again every 15 s: a signed-out browser stops hearing
_NEWER = text("SELECT seq, name, subject_type, subject_id FROM events WHERE seq > :after AND seq <= :upto "
              "AND tenant_id = :tenant ORDER BY seq LIMIT 200")
TOPIC = r"^(lead|deal|investor|board|call-next|inbox)(:[\w-]+)?$"
_LAST = text("SELECT COALESCE(MAX(seq), 0) FROM events")


def _matches(topic: str, user_id: str | None, name: str, subject_type: str, subject_id: str) -> bool:
    kind, _, target = topic.partition(":")
    if kind == "lead":
        return subject_type == "lead" and subject_id == target
    if kind == "deal":
        return subject_type == "deal" and subject_id == target
    if kind == "investor":
        return subject_type == "investor" and subject_id == target
    if kind == "inbox":  # a reply came in (a STOP is an opt-out)
        return name in ("lead.replied", "investor.replied", "lead.opted_out", "investor.opted_out")
    if kind == "board":
        return subject_type == "deal"
    if kind == "call-next":  # a new or changed lead, or something for me (a task assigned: its notification)
        return subject_type == "lead" or (subject_type == "user" and subject_id == user_id)
    return False


@router.get("/live")
async def live(request: Request, principal: SignedIn,
               topic: Annotated[str, Query(max_length=80, pattern=TOPIC)]) -> StreamingResponse:
    if topic.partition(":")[0] in ("lead", "deal", "investor") and not topic.partition(":")[2]:
        raise Problem(422, "a lead, deal or investor topic names it (lead:<id>)", errors=[{"field": "topic",
                                                                                 "message": "no id"}])
    engine = request.app.state.engine

    def read(after: int | None):
        """(the newest seq now, this tenant's events after `after` up to it): each read scans only the events
        written since the last one, whoever's they are."""
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            upto = connection.execute(_LAST).scalar_one()
            if after is None:
                return upto, []
            return upto, connection.execute(_NEWER, {"after": after, "upto": upto,
                                                     "tenant": principal.tenant_id}).all()

    cookie = request.cookies.get(SESSION_COOKIE, "")

    def still_signed_in() -> bool:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return session_principal(connection, cookie) is not None

    async def stream():
        after, _ = await run_in_threadpool(read, None)
        started = beat = time.monotonic()
        polls = 0
        yield "retry: 2000\n\n"
        while time.monotonic() - started < STREAM_SECONDS and not await request.is_disconnected():
            await asyncio.sleep(POLL_SECONDS)
            polls += 1
            if polls % SESSION_CHECK_POLLS == 0 and not await run_in_threadpool(still_signed_in):
                return  # signed out or deactivated meanwhile: the reconnection is sent to sign in
            after, rows = await run_in_threadpool(read, after)
            changed = [row for row in rows if _matches(topic, principal.user_id, row[1], row[2], row[3])]
            if changed:
                yield f"event: change\ndata: {json.dumps({'events': [row[1] for row in changed]})}\n\n"
                beat = time.monotonic()
            elif time.monotonic() - beat > HEARTBEAT_SECONDS:
                yield ": still here\n\n"
                beat = time.monotonic()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
