"""The console's pages. Each reads through the API's own read handlers (the ones any signed-in role may call:
the same queries, the same tenant scoping, the same 404s) and renders; every change a page offers is a form that
console.js sends to the JSON API with the session's CSRF token, so the API's rules, role checks, audit rows and
problem documents are the console's too. Nothing here decides anything."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from api.deps import ClientDep, SessionDep, get_deal_models
from api.errors import Problem
from api.routes import documents as documents_api
from api.routes import leads as leads_api
from api.routes import messages as messages_api
from api.routes import offerings as offerings_api
from api.routes import opportunities as deals_api
from api.routes import tasks as tasks_api
from console.app import render
from console.auth import SignedIn
from definitions.pipelines import PIPELINES
from models.base import utcnow
from providers.documents.templates import KINDS
from models.investor import Investor
from models.lead import Lead, LeadSource, LeadStatus
from models.opportunity import Opportunity
from models.task import TaskStatus
from models.tenant import User
from services.deals import DealFilters, deal_list_query
from services.definition_store import active

router = APIRouter(prefix="/app", include_in_schema=False)

BOARD_COLUMN_LIMIT = 50
# The documents a deal's page sends to its seller (the seller and the tenant as buyer sign them); the others go to
# investors, from their pages.
DEAL_DOCUMENTS = tuple(key for key, kind in KINDS.items() if {r.role for r in kind.signers} == {"seller", "buyer"})


def people_of(session, tenant_id: str) -> dict[str, User]:
    return {user.id: user for user in session.exec(select(User).where(User.tenant_id == tenant_id)
                                                    .order_by(col(User.name), col(User.id))).all()}


def _score(value: str, field: str) -> float | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:
        raise Problem(422, f"{field} is a score from 0 to 1", errors=[{"field": field, "message": "0 to 1"}])
    return number


@router.get("", response_class=HTMLResponse)
def call_next(request: Request, principal: SignedIn, session: SessionDep) -> HTMLResponse:
    """My open tasks, soonest due first; then new leads that are mine or nobody's, best score first."""
    tasks = tasks_api.list_tasks(session, principal, assignee="me" if principal.user_id else None,
                                 status=TaskStatus.open, due_before=None, lead_id=None, limit=50, cursor=None)
    # The newest 50 new leads that are mine or nobody's (a list by score would leave out the ones not scored yet:
    # the newest of all), best score first, the unscored after them, newest first.
    found = [leads_api.list_leads(session, principal, status=[LeadStatus.new], source=None, q=None, assigned=who,
                                  min_score=None, max_score=None, include_duplicates=False, sort="-created_at",
                                  limit=50, cursor=None, tag=None, created_from=None, created_to=None).items
             for who in (principal.user_id, "none")]
    leads = sorted([lead for page in found for lead in page],
                   key=lambda lead: (lead.score is None, -(lead.score or 0), -lead.created_at.timestamp()))[:50]
    return render(request, "call_next.html.j2", principal, title="Call next", tasks=tasks.items, leads=leads,
                  live="call-next",
                  now=utcnow(), snooze_until=(utcnow() + timedelta(hours=2)).isoformat(timespec="seconds"))


@router.get("/leads", response_class=HTMLResponse)
def leads(request: Request, principal: SignedIn, session: SessionDep,
          status: Annotated[list[LeadStatus] | None, Query()] = None,
          source: Annotated[list[LeadSource] | None, Query()] = None,
          q: Annotated[str | None, Query(max_length=200)] = None,
          assigned: Annotated[str | None, Query(max_length=40)] = None,
          min_score: Annotated[str, Query(max_length=20)] = "",
          max_score: Annotated[str, Query(max_length=20)] = "",
          sort: Annotated[str, Query(pattern="^-?(created_at|score)$")] = "-created_at",
          tag: Annotated[str, Query(max_length=64)] = "",
          created_from: Annotated[str, Query(max_length=10)] = "",
          created_to: Annotated[str, Query(max_length=10)] = "",
          cursor: Annotated[str | None, Query(max_length=400)] = None) -> HTMLResponse:
    # (a filter form sends its empty fields too: empty means "any")
    assigned = (principal.user_id or None) if assigned == "me" else (assigned or None)
    min_score, max_score = _score(min_score, "min_score"), _score(max_score, "max_score")
    since, until = _day(created_from, "created_from"), _day(created_to, "created_to", end=True)
    found = leads_api.list_leads(session, principal, status=status, source=source, q=q or None, assigned=assigned,
                                 min_score=min_score, max_score=max_score, include_duplicates=False, sort=sort,
                                 limit=50, cursor=cursor, tag=tag or None, created_from=since, created_to=until)
    chosen = {"status": [s.value for s in status or ()], "source": [s.value for s in source or ()], "q": q or "",
              "assigned": request.query_params.get("assigned", ""), "min_score": min_score, "max_score": max_score,
              "sort": sort, "tag": tag, "created_from": created_from, "created_to": created_to}
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    next_url = f"/app/leads?{urlencode([*query, ('cursor', found.next_cursor)])}" if found.next_cursor else None
    # The export: the API's CSV of the same filters (only those given: the API wants no empty ones)
    export = [("status", s) for s in chosen["status"]] + [("source", s) for s in chosen["source"]] + [
        (k, str(v)) for k, v in (("q", q), ("assigned", assigned), ("min_score", min_score),
                                 ("max_score", max_score), ("tag", tag), ("sort", sort),
                                 ("created_from", since.isoformat() if since else None),
                                 ("created_to", until.isoformat() if until else None)) if v not in (None, "")]
    definitions = [d.key for d in active(session, principal.tenant_id) if d.subject == "lead"]
    return render(request, "leads.html.j2", principal, title="Leads", leads=found.items, chosen=chosen,
                  statuses=[s.value for s in LeadStatus], sources=[s.value for s in LeadSource],
                  people=people_of(session, principal.tenant_id), next_url=next_url, first_page=cursor is None,
                  export_url=f"/api/v1/leads/export.csv?{urlencode(export)}", definitions=sorted(definitions))


def _day(value: str, field: str, end: bool = False) -> datetime | None:
    """A date field (YYYY-MM-DD, UTC) as the start of that day, or of the next one for an inclusive end."""
    if not value.strip():
        return None
    try:
        day = date.fromisoformat(value)
        return datetime.combine(day + timedelta(days=1) if end else day, time(0), tzinfo=UTC)
    except (ValueError, OverflowError):
        raise Problem(422, f"{field} is a date (YYYY-MM-DD)", errors=[{"field": field, "message": "not a date"}]
                      ) from None


@router.get("/leads/{lead_id}", response_class=HTMLResponse)
async def lead(request: Request, lead_id: str, principal: SignedIn, session: SessionDep,
               client: ClientDep) -> HTMLResponse:
    found = await leads_api.get_lead(lead_id, session, principal, client)

    def read():
        timeline = leads_api.lead_timeline(lead_id, session, principal)
        tasks = tasks_api.list_tasks(session, principal, assignee=None, status=TaskStatus.open, due_before=None,
                                     lead_id=lead_id, limit=50, cursor=None)

        templates = messages_api.list_templates(session, principal, audience="lead")  # what a lead's send can use
        return list(reversed(timeline)), tasks.items, people_of(session, principal.tenant_id), templates

    timeline, tasks, people, templates = await run_in_threadpool(read)
    return render(request, "lead.html.j2", principal, title=f"{found.first_name} {found.last_name}".strip(),
                  lead=found, timeline=timeline, tasks=tasks, people=people, templates=templates,
                  live=f"lead:{found.id}",
                  statuses=[s.value for s in LeadStatus])


@router.get("/board", response_class=HTMLResponse)
def board(request: Request, principal: SignedIn, session: SessionDep,
          pipeline: Annotated[str, Query(max_length=20)] = "acquisition") -> HTMLResponse:
    spec = PIPELINES.get(pipeline)
    if spec is None:
        return RedirectResponse("/app/board", status_code=303)
    columns = []
    now = utcnow()
    for stage in spec.stages.values():
        deals = session.exec(deal_list_query(principal.tenant_id, DealFilters(pipeline=pipeline, stage=stage.name))
                             .order_by(col(Opportunity.stage_entered_at)).limit(BOARD_COLUMN_LIMIT)).all()
        cards = []
        for deal in deals:
            days = (now - deal.stage_entered_at).total_seconds() / 86_400
            sla = stage.sla
            late = bool(sla and not stage.closed and now - deal.stage_entered_at > sla.within)
            value = deal.contract_price or deal.offer_price or deal.asking_price
            cards.append({"deal": deal, "days": days, "sla": sla, "late": late, "value": value})
        total = sum((card["value"] or 0) for card in cards)
        columns.append({"stage": stage, "cards": cards, "total": total, "full": len(cards) == BOARD_COLUMN_LIMIT})
    return render(request, "board.html.j2", principal, title="Pipeline", pipeline=spec, pipelines=list(PIPELINES),
                  live=f"board:{pipeline}",
                  columns=columns, people=people_of(session, principal.tenant_id))


@router.get("/deals/{opportunity_id}", response_class=HTMLResponse)
def deal(request: Request, opportunity_id: str, principal: SignedIn, session: SessionDep) -> HTMLResponse:
    found = deals_api.get_opportunity(opportunity_id, session, principal)
    spec = PIPELINES[found.pipeline]
    here = spec.stages.get(spec.aliases.get(found.stage, found.stage))
    offerings = offerings_api.list_offerings(opportunity_id, session, principal)
    named = {a.investor_id for o in offerings for a in o.allocations}
    investors = {row.id: row for row in session.exec(select(Investor).where(
        Investor.tenant_id == principal.tenant_id, col(Investor.id).in_(named)))} if named else {}
    seller = session.get(Lead, found.lead_id) if found.lead_id else None
    deal_documents = documents_api.list_documents(opportunity_id, session, principal)
    return render(request, "deal.html.j2", principal, title=found.title, deal=found, live=f"deal:{found.id}",
                  next_stages=[name for name in spec.stages if here and name in here.next],
                  people=people_of(session, principal.tenant_id),
                  documents=deal_documents,
                  subscription_docs={d.id: d for d in deal_documents if d.kind == "subscription_agreement"},
                  matches=deals_api.list_matches(opportunity_id, session, principal), offerings=offerings,
                  replies=deals_api.list_blast_replies(opportunity_id, session, principal),
                  forecast=deals_api.get_forecast(opportunity_id, session, principal, get_deal_models(request),
                                                  request.app.state.settings),
                  blast_key=uuid.uuid4().hex,  # one per page: a second click of the same form is the same blast
                  investors=investors, templates=[(key, KINDS[key].title) for key in DEAL_DOCUMENTS], seller=seller,
                  me_user=session.get(User, principal.user_id) if principal.user_id else None)
