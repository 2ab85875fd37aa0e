"""Opportunities (deals): open one (from scratch or for a lead), edit its prices, list with filters, assign, move
stages through DealWorkflow's validated update (409 with every unmet rule of definitions/pipelines.yaml), match
investors. The rules live in services/deals.py and the pipelines' data; these routes only translate."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep, DealModelsDep, PrincipalDep, SessionDep, SettingsDep, Staff, audit, me
from api.errors import Problem
from api.paging import page
from api.routes.messages import MessagePublic
from definitions.durations import parse_duration
from definitions.staff import Team
from models.input import Input, OneLine
from models.investor import Investor
from providers.templates import latest_template
from services.matching import match_investors
from models.opportunity import Opportunity, OpportunityMatch, StageChange
from models.payloads import StageMove
from scoring.deal_analysis import Analysis, analyse_deal
from services.acting import check_owner
from services.assignment import assign_deal
from services.deal_forecast import forecast_deal
from services.deals import MONEY, DealFilters, deal_facts, deal_list_query, get_deal, open_deal, update_deal
from workflows.deal import DealState, DealWorkflow

router = APIRouter(prefix="/api/v1/opportunities", tags=["opportunities"])


class StageChangePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    from_stage: str | None
    to_stage: str
    actor: str
    reason: str | None
    changed_at: datetime


class OpportunityPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    lead_id: str | None
    property_id: str | None
    title: str
    pipeline: str
    stage: str
    asking_price: Decimal | None
    offer_price: Decimal | None
    contract_price: Decimal | None
    arv: Decimal | None
    repair_estimate: Decimal | None
    sale_price: Decimal | None
    assignment_fee: Decimal | None
    closing_costs: Decimal | None
    repairs_spent: Decimal | None
    assigned_to: str | None
    workflow_id: str | None
    created_at: datetime
    stage_entered_at: datetime
    closed_at: datetime | None
    history: list[StageChangePublic] = Field(default_factory=list)
    analysis: Analysis | None = Field(default=None, description="the deal math of its saved prices and costs "
                                      "(GET /opportunities/{id} only; POST /analysis for unsaved numbers)")


class OpportunityPage(BaseModel):
    items: list[OpportunityPublic]
    next_cursor: str | None


class StageBody(Input):
    model_config = ConfigDict(extra="forbid")
    stage: str = Field(min_length=1, max_length=40)
    reason: str | None = Field(default=None, max_length=500)


Money = Annotated[Decimal, Field(ge=0, le=Decimal("999999999999.99"), max_digits=14, decimal_places=2)]


class DealPrices(Input):
    asking_price: Money | None = None
    offer_price: Money | None = None
    contract_price: Money | None = None
    arv: Money | None = Field(default=None, description="after-repair value")
    repair_estimate: Money | None = None
    sale_price: Money | None = Field(default=None, description="a flip's resale price, or the end buyer's price")
    assignment_fee: Money | None = None
    closing_costs: Money | None = None
    repairs_spent: Money | None = None


class OpportunityCreate(DealPrices):
    model_config = ConfigDict(extra="forbid")
    title: OneLine | None = Field(default=None, min_length=1, max_length=200,
                                  description="default: the lead's property address or name")
    pipeline: Literal["acquisition", "disposition"] = "acquisition"
    lead_id: str | None = Field(default=None, max_length=40, description="the seller's lead (not converted by this)")
    assignee: str | None = Field(default=None, max_length=320, description="a user's id or email, `me`, "
                                 "`round_robin` (the next of `team`), `owner` (the lead's); default: the lead's owner")
    team: Team | None = None


class OpportunityUpdate(DealPrices):
    model_config = ConfigDict(extra="forbid")
    title: OneLine | None = Field(default=None, min_length=1, max_length=200)


class AssignBody(Input):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(max_length=320, description="a user's id or email, `me`, `round_robin`, or null")
    team: Team | None = None


def _own(session, principal, opportunity_id: str) -> Opportunity:
    return get_deal(session, principal.tenant_id, opportunity_id)


def _public(session, deal: Opportunity) -> OpportunityPublic:
    return _publics(session, [deal])[0]


def _publics(session, deals: list[Opportunity]) -> list[OpportunityPublic]:
    """The deals with their stage histories, read in one query for the lot (a page of 50 made 50 before)."""
    history: dict[str, list[StageChangePublic]] = {deal.id: [] for deal in deals}
    if deals:
        for change in session.exec(select(StageChange).where(col(StageChange.opportunity_id).in_(list(history)))
                                   .order_by(col(StageChange.changed_at), col(StageChange.id))):
            history[change.opportunity_id].append(StageChangePublic.model_validate(change))
    return [OpportunityPublic.model_validate(deal).model_copy(update={"history": history[deal.id]}) for deal in deals]


@router.get("", response_model=OpportunityPage)
def list_opportunities(
    session: SessionDep, principal: PrincipalDep,
    stage: Annotated[str | None, Query(max_length=40)] = None,
    pipeline: Annotated[str | None, Query(max_length=20)] = None,
    assignee: Annotated[str | None, Query(max_length=40, description="`me`, a user id, or `none` (unassigned)")
                        ] = None,
    min_value: Annotated[Decimal | None, Query(ge=0, le=Decimal("1e12"), description="the deal's value: its "
                                               "contract price, else its offer, else its asking price")] = None,
    max_value: Annotated[Decimal | None, Query(ge=0, le=Decimal("1e12"))] = None,
    stale_for: Annotated[str | None, Query(max_length=10, description="open deals that entered their stage at "
                                           "least this long ago (30m, 2h, 3d, 1w), longest first")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> OpportunityPage:
    """Newest first (keyset cursor); with `stale_for`, the stalest first."""
    stale = None
    if stale_for is not None:
        try:
            stale = parse_duration(stale_for)
        except ValueError as exc:
            raise Problem(422, str(exc), errors=[{"field": "stale_for", "message": str(exc)}]) from None
    filters = DealFilters(pipeline=pipeline, stage=stage, assignee=me(principal, assignee), min_value=min_value,
                          max_value=max_value, stale_for=stale)
    query = deal_list_query(principal.tenant_id, filters)
    if stale is not None:
        items, next_cursor = page(session, query, Opportunity, limit, cursor, by="stage_entered_at", descending=False)
    else:
        items, next_cursor = page(session, query, Opportunity, limit, cursor)
    return OpportunityPage(items=_publics(session, items), next_cursor=next_cursor)


@router.post("", response_model=OpportunityPublic, status_code=201)
def create_opportunity(body: OpportunityCreate, session: SessionDep, principal: Staff) -> OpportunityPublic:
    """A deal in its pipeline's first stage; its DealWorkflow is started by the worker from the event committed
    with it (GET shows `workflow_id` at once; stage moves answer 409 until the workflow runs, seconds later)."""
    deal = open_deal(session, principal, title=body.title, pipeline=body.pipeline, lead_id=body.lead_id,
                     assignee=me(principal, body.assignee), team=body.team,
                     **{k: getattr(body, k) for k in MONEY if getattr(body, k) is not None})
    return _public(session, deal)


@router.patch("/{opportunity_id}", response_model=OpportunityPublic)
def patch_opportunity(opportunity_id: str, body: OpportunityUpdate, session: SessionDep,
                      principal: Staff) -> OpportunityPublic:
    """The title and the prices and costs; a field sent as null is cleared, one left out is kept."""
    deal = update_deal(session, principal, _own(session, principal, opportunity_id),
                       body.model_dump(exclude_unset=True))
    return _public(session, deal)


@router.post("/{opportunity_id}/assign", response_model=OpportunityPublic)
def assign_opportunity(opportunity_id: str, body: AssignBody, session: SessionDep,
                       principal: Staff) -> OpportunityPublic:
    """Staff take deals that are theirs or no one's; managers and admins reassign anyone's. The new owner is
    notified."""
    deal = assign_deal(session, principal, _own(session, principal, opportunity_id), me(principal, body.assignee),
                       team=body.team)
    return _public(session, deal)


@router.get("/{opportunity_id}", response_model=OpportunityPublic)
def get_opportunity(opportunity_id: str, session: SessionDep, principal: PrincipalDep) -> OpportunityPublic:
    deal = _own(session, principal, opportunity_id)
    return _public(session, deal).model_copy(update={"analysis": analyse_deal(deal)})


class Interval(BaseModel):
    p10: float
    p50: float
    p90: float


class ForecastModel(BaseModel):
    version: int
    kind: str = Field(description="cold_start (the synthetic deal book), crm_history (the tenant's own deals) or csv "
                      "(imported past deals with the CRM's)")
    trained_on: int = Field(description="how many deals the models were trained on")
    trained_at: datetime
    metrics: dict[str, float | int] = Field(description="held-out pinball loss (and a constant-quantile baseline's), "
                                            "p10-p90 coverage, Harrell's concordance, the AFT scale sigma, counts")


class DealOutcome(BaseModel):
    days_to_close: float
    closed_at: datetime
    profit: float | None = Field(description="realised (None without the figures, or lost)")
    roi: float | None


class ForecastPublic(BaseModel):
    closed: bool = Field(description="a closed deal answers its outcome instead of a forecast")
    stage: str
    profit: Interval | None = Field(default=None, description="dollars: p10, p50 (median), p90, if it closes won")
    roi: Interval | None = Field(default=None, description="fractions (0.12 = 12 %), if it closes won")
    close_within: dict[str, float] | None = Field(default=None, description='P(it closes won within 30/60/90 days '
                                                  'from now, given how long it has been open): {"30": p, ...}')
    median_days: float | None = Field(default=None, description="the model's median days from opening to close")
    days_open: float | None = None
    outcome: DealOutcome | None = None
    model: ForecastModel | None = None
    basis: str


@router.get("/{opportunity_id}/forecast", response_model=ForecastPublic)
def get_forecast(opportunity_id: str, session: SessionDep, principal: PrincipalDep, models: DealModelsDep,
                 settings: SettingsDep) -> ForecastPublic:
    """Expected profit and ROI (p10/p50/p90) and the probability of closing within 30, 60 and 90 days, with the
    model that says so (cold start on the synthetic book until the tenant has enough closed deals). A closed deal
    answers its outcome (`closed`, `outcome`)."""
    deal = _own(session, principal, opportunity_id)
    forecast = forecast_deal(session, models, deal, settings.deal_forecast_min_closed)
    return ForecastPublic.model_validate(forecast, from_attributes=True)


@router.post("/{opportunity_id}/stage", response_model=DealState)
async def move_stage(opportunity_id: str, body: StageBody, session: SessionDep, client: ClientDep,
                     settings: SettingsDep, principal: Staff) -> DealState:
    """A Temporal update: a move the pipeline refuses is a 409 listing every reason (`errors`): a stage that
    cannot be reached from this one, a required price, a document not yet signed, a missing reason."""

    def read() -> tuple[Opportunity, object]:
        deal = _own(session, principal, opportunity_id)
        check_owner(principal, deal.assigned_to, f"deal {deal.id}")  # staff move their own and unassigned deals
        return deal, deal_facts(session, deal)

    deal, facts = await run_in_threadpool(read)
    if not deal.workflow_id:
        raise Problem(409, f"opportunity {opportunity_id} has no workflow")
    try:
        state = await client.get_workflow_handle(deal.workflow_id).execute_update(
            DealWorkflow.advance_stage, StageMove(stage=body.stage, reason=body.reason, actor=principal.actor,
                                                  facts=facts))
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        details = [d for d in (getattr(cause, "details", None) or ()) if isinstance(d, str)]
        raise Problem(409, getattr(cause, "message", None) or str(cause),
                      errors=[{"field": "stage", "message": d} for d in details] or None) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"opportunity {opportunity_id}'s workflow is not running") from None
        raise Problem(503, f"Temporal is unavailable: {exc.message}", headers={"Retry-After": "5"}) from exc

    previous = deal.stage

    def record() -> None:
        audit(session, principal, "opportunity.stage", "opportunity", opportunity_id,
              before={"stage": previous}, after={"stage": body.stage, "reason": body.reason})
        session.commit()  # the workflow's activity wrote the stage and its deal.stage_changed event

    await run_in_threadpool(record)
    return state


class BlastBody(Input):
    model_config = ConfigDict(extra="forbid")
    top: int = Field(ge=1, le=100, description="how many of the best eligible matches to send it to")
    channel: Literal["email", "sms"] = "email"
    template: str = Field(default="", max_length=80, description="default: investor_deal_blast (email) or "
                          "investor_deal_blast_sms")
    key: str | None = Field(default=None, min_length=1, max_length=100, description="the blast's idempotency key "
                            "(or the Idempotency-Key header): a retry sends to the same people, nobody new")


class BlastPublic(BaseModel):
    key: str
    sent: list[str]
    skipped: list[dict[str, str]]
    repeated: bool


@router.post("/{opportunity_id}/blast", response_model=BlastPublic, status_code=202)
def blast_deal(opportunity_id: str, body: BlastBody, session: SessionDep, principal: Staff,
               idempotency_key: Annotated[str | None, Header(max_length=100)] = None) -> BlastPublic:
    """The deal's summary to the top N eligible matches not sent it before (consent, quiet hours and unsubscribe
    apply; each message goes out once, through the worker). 409 when the deal's raise is fully committed."""
    from services.blasts import blast

    template = body.template or ("investor_deal_blast" if body.channel == "email" else "investor_deal_blast_sms")
    found = latest_template(session, principal.tenant_id, template)
    if found is None or found.channel != body.channel:
        raise Problem(422, f"no {body.channel} template {template!r}",
                      errors=[{"field": "template", "message": f"not a {body.channel} template"}])
    key = body.key or idempotency_key or uuid.uuid4().hex
    result = blast(session, principal, _own(session, principal, opportunity_id), top=body.top, channel=body.channel,
                   template=template, key=key)
    return BlastPublic(key=result.key, sent=result.sent, skipped=result.skipped, repeated=result.repeated)


class BlastReplyPublic(BaseModel):
    investor_id: str
    investor_name: str
    blasted_at: datetime
    message: MessagePublic


@router.get("/{opportunity_id}/blast/replies", response_model=list[BlastReplyPublic])
def list_blast_replies(opportunity_id: str, session: SessionDep, principal: PrincipalDep) -> list[BlastReplyPublic]:
    """The replies of the investors this deal was blasted to, since it reached them, newest first, each with its
    intent: where soft commits come from (POST /offerings/{id}/allocations)."""
    from services.blasts import blast_replies

    return [BlastReplyPublic(investor_id=r.investor_id, investor_name=r.investor_name, blasted_at=r.blasted_at,
                             message=MessagePublic.model_validate(r.message))
            for r in blast_replies(session, _own(session, principal, opportunity_id))]


class MatchPublic(BaseModel):
    investor_id: str
    name: str
    score: float
    reasons: list[str]
    status: str


class MatchBody(Input):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=10, ge=1, le=100)
    accredited_only: bool = False


def _matches(session, deal: Opportunity) -> list[MatchPublic]:
    rows = session.exec(select(OpportunityMatch, Investor).join(Investor)
                        .where(OpportunityMatch.opportunity_id == deal.id)).all()
    matches = [MatchPublic(investor_id=i.id, name=i.name, score=m.score, reasons=[r["text"] for r in m.reasons],
                           status=m.status) for m, i in rows]
    return sorted(matches, key=lambda m: (-m.score, m.name))


@router.get("/{opportunity_id}/matches", response_model=list[MatchPublic])
def list_matches(opportunity_id: str, session: SessionDep, principal: PrincipalDep) -> list[MatchPublic]:
    """The investors matched to this deal so far, best first (POST finds them; so does a definition's
    match_investors step)."""
    return _matches(session, _own(session, principal, opportunity_id))


@router.post("/{opportunity_id}/matches", response_model=list[MatchPublic])
def find_matches(opportunity_id: str, body: MatchBody, session: SessionDep, principal: Staff) -> list[MatchPublic]:
    """Match the deal against every investor's buy box now (markets, price range, property types, capital,
    accreditation); stored, so repeating it refreshes scores and keeps each match's status."""
    deal = _own(session, principal, opportunity_id)
    matched = [f.investor.id for f in match_investors(session, deal, body.limit, body.accredited_only)]
    audit(session, principal, "opportunity.match", "opportunity", opportunity_id, after={"investor_ids": matched})
    session.commit()
    wanted = set(matched)
    return [m for m in _matches(session, deal) if m.investor_id in wanted]
