"""The console's investor pages: the list (the API's filters, cursor paging) and an investor's page (profile, buy
box, accreditation with its expiry and what it allows, allocations in every raise, messages, timeline, and the
composer). Reads through the API's read handlers; changes are forms console.js sends to the JSON API."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.deps import SessionDep
from api.errors import Problem
from api.routes import investors as investors_api
from api.routes import messages as messages_api
from api.routes import offerings as offerings_api
from console.app import render
from console.auth import SignedIn
from console.pages import people_of
from definitions.language import RECORDED_EVENTS
from models.accreditation import AccreditationMethod
from models.investor import InvestorStatus

router = APIRouter(prefix="/app", include_in_schema=False)


def _check(value: str) -> Decimal | None:
    if not value.strip():
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or not 0 <= amount <= Decimal("1e12"):  # (NaN compares by raising)
        raise Problem(422, "check is an amount in dollars", errors=[{"field": "check", "message": "an amount"}])
    return amount


@router.get("/investors", response_class=HTMLResponse)
def investors(request: Request, principal: SignedIn, session: SessionDep,
              status: Annotated[list[InvestorStatus] | None, Query()] = None,
              accredited: Annotated[str, Query(pattern="^(|yes|no)$")] = "",
              market: Annotated[str, Query(pattern=r"^(|[A-Za-z]{2}|\d{5})$")] = "",
              check: Annotated[str, Query(max_length=20)] = "",
              owner: Annotated[str, Query(max_length=40)] = "",
              q: Annotated[str, Query(max_length=200)] = "",
              ends: Annotated[str, Query(pattern="^(|30|90)$")] = "",
              cursor: Annotated[str | None, Query(max_length=400)] = None) -> HTMLResponse:
    # (a filter form sends its empty fields too: empty means "any")
    found = investors_api.list_investors(
        session, principal, status=status, accredited={"yes": True, "no": False}.get(accredited),
        market=market or None, check=_check(check), contacted_before=None, contacted_after=None,
        owner=owner or None, q=q or None, accreditation_ends_within=int(ends) if ends else None, limit=50,
        cursor=cursor)
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    next_url = f"/app/investors?{urlencode([*query, ('cursor', found.next_cursor)])}" if found.next_cursor else None
    chosen = {"status": [s.value for s in status or ()], "accredited": accredited, "market": market, "check": check,
              "owner": owner, "q": q, "ends": ends}
    return render(request, "investors.html.j2", principal, title="Investors", investors=found.items, chosen=chosen,
                  statuses=[s.value for s in InvestorStatus], people=people_of(session, principal.tenant_id),
                  next_url=next_url, first_page=cursor is None)


@router.get("/investors/{investor_id}", response_class=HTMLResponse)
def investor(request: Request, investor_id: str, principal: SignedIn, session: SessionDep) -> HTMLResponse:
    found = investors_api.get_investor(investor_id, session, principal)
    accreditations = investors_api.list_accreditations(investor_id, session, principal)
    eligibility = {rule: investors_api.eligibility(investor_id, session, principal, rule=rule)
                   for rule in ("506b", "506c")}
    messages = messages_api.list_messages(session, principal, lead_id=None, investor_id=investor_id, user_id=None,
                                          channel=None, status=None, direction=None, intent=None, limit=20,
                                          cursor=None).items
    timeline = investors_api.investor_timeline(investor_id, session, principal)
    return render(request, "investor.html.j2", principal, title=found.name, investor=found,
                  accreditations=accreditations, current=next((a for a in accreditations if a.status == "valid"), None),
                  eligibility=eligibility, messages=messages, timeline=list(reversed(timeline)),
                  allocations=offerings_api.list_investor_allocations(investor_id, session, principal),
                  templates=messages_api.list_templates(session, principal, audience="investor"),
                  people=people_of(session, principal.tenant_id), live=f"investor:{found.id}",
                  events=sorted(RECORDED_EVENTS["investor"] - {"document.signed"}),
                  methods=[m.value for m in AccreditationMethod])
