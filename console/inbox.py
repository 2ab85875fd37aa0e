"""The console's inbox: the replies of leads and investors, newest first, with what each one means (the intent
model's reading or a colleague's correction), a reply from a template in one click and the intent corrected in
another. Reads through the messages API; the reply and the correction are the API's own endpoints."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from api.deps import SessionDep
from api.routes import messages as messages_api
from console.app import render
from console.auth import SignedIn
from definitions.vocabulary import ReplyIntent
from models.investor import Investor
from models.lead import Lead

router = APIRouter(prefix="/app", include_in_schema=False)


@router.get("/inbox", response_class=HTMLResponse)
def inbox(request: Request, principal: SignedIn, session: SessionDep,
          intent: Annotated[list[ReplyIntent] | None, Query()] = None,
          channel: Annotated[str, Query(pattern="^(|email|sms)$")] = "",
          cursor: Annotated[str | None, Query(max_length=400)] = None) -> HTMLResponse:
    found = messages_api.list_messages(session, principal, lead_id=None, investor_id=None, user_id=None,
                                       channel=channel or None, status=None, direction="inbound", intent=intent,
                                       limit=50, cursor=cursor)
    lead_ids = {m.lead_id for m in found.items if m.lead_id}
    investor_ids = {m.investor_id for m in found.items if m.investor_id}
    leads = {row.id: row for row in session.exec(select(Lead).where(
        Lead.tenant_id == principal.tenant_id, col(Lead.id).in_(lead_ids), col(Lead.deleted_at).is_(None)))
    } if lead_ids else {}  # (a deleted lead's reply shows as from an unknown sender: nobody to answer)
    investors = {row.id: row for row in session.exec(select(Investor).where(
        Investor.tenant_id == principal.tenant_id, col(Investor.id).in_(investor_ids)))} if investor_ids else {}
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    next_url = f"/app/inbox?{urlencode([*query, ('cursor', found.next_cursor)])}" if found.next_cursor else None
    return render(request, "inbox.html.j2", principal, title="Inbox", replies=found.items, leads=leads,
                  investors=investors, live="inbox", intents=[i.value for i in ReplyIntent],
                  chosen={"intent": [i.value for i in intent or ()], "channel": channel},
                  templates={kind: messages_api.list_templates(session, principal, audience=kind)
                             for kind in ("lead", "investor")},
                  next_url=next_url, first_page=cursor is None)
