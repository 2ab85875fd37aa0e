"""A deal's expected return and time to close, from the tenant's deal models (scoring/deal_forecast.py).

Which model answers: the tenant's active one; a forecast only reads it. A tenant with none gets the cold-start
forecaster (the synthetic deal book) as version 1. Its own (kind `crm_history`) are trained by the retraining
(services/deal_retraining.py, weekly on its Schedule) from every deal of its book — closed-won deals with their
realised profit and ROI and days to close; deals still open censored at their days so far, lost ones at their days
until lost — the first once it has `min_closed` closed-won deals with their figures (settings.deal_forecast_min_closed),
later ones only when they beat the active version on the deals closed since. A model trained with an imported CSV of
past deals (kind `csv`, `dealflow scoring train-deals --csv`) is kept until the next import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, or_
from sqlmodel import Session, col, func, select

from models.base import utcnow
from models.lead import Lead, Property
from models.opportunity import Opportunity
from scoring.deal_export import PastDeals
from scoring.deal_forecast import DealBook, Progress, train_forecaster
from scoring.deal_forecast import realised_return as forecast_return
from scoring.deal_registry import DealModels, LoadedForecaster

WON, LOST = "closed_won", "closed_lost"
DAY = 86_400.0


def realised_return(deal: Any) -> tuple[float, float] | None:
    """What a saved closed-won deal made (scoring/deal_forecast.realised_return's rules), or None without the
    figures."""
    return forecast_return({k: getattr(deal, k, None) for k in ("contract_price", "closing_costs", "assignment_fee",
                                                                 "sale_price", "repairs_spent", "repair_estimate")})


def _with_figures():
    """SQL for realised_return's condition: the closed-won deals a return model learns from."""
    return and_(Opportunity.stage == WON, col(Opportunity.contract_price) > 0,
                or_(col(Opportunity.assignment_fee).is_not(None),
                    and_(col(Opportunity.sale_price).is_not(None),
                         or_(col(Opportunity.repairs_spent).is_not(None),
                             col(Opportunity.repair_estimate).is_not(None)))))


def closed_with_figures(session: Session, tenant_id: str) -> int:
    return session.exec(select(func.count()).select_from(Opportunity).where(
        Opportunity.tenant_id == tenant_id, _with_figures())).one()


def deal_row(deal: Opportunity, prop: Property | None, lead: Lead | None) -> dict[str, Any]:
    """What the models read of a saved deal: its pipeline and prices, its property's type and state, its lead's
    source."""
    return {"pipeline": deal.pipeline, "property_type": prop.property_type if prop else None,
            "state": prop.state if prop else None, "lead_source": lead.source if lead else None,
            "asking_price": deal.asking_price, "offer_price": deal.offer_price,
            "contract_price": deal.contract_price, "arv": deal.arv, "repair_estimate": deal.repair_estimate}


def days_between(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds() / DAY, 0.0)


@dataclass
class BookRows:
    """Deals with their outcomes, before they become a DealBook (the CSV import appends its own)."""

    deals: list[dict[str, Any]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    days: list[float] = field(default_factory=list)
    profit: list[float] = field(default_factory=list)
    roi: list[float] = field(default_factory=list)

    def add(self, deal: dict[str, Any], status: str, days: float, outcome: tuple[float, float] | None) -> None:
        self.deals.append(deal)
        self.status.append(status)
        self.days.append(days)
        self.profit.append(outcome[0] if outcome and status == "won" else math.nan)
        self.roi.append(outcome[1] if outcome and status == "won" else math.nan)

    def book(self) -> DealBook:
        return DealBook(deals=self.deals, status=np.array(self.status, dtype=object).astype(str),
                        days=np.array(self.days, dtype=float), profit=np.array(self.profit, dtype=float),
                        roi=np.array(self.roi, dtype=float))


@dataclass(frozen=True)
class DealRecord:
    """A saved deal with what happened to it: `status` won / lost / open, `closed` when it closed (won or lost;
    its updated_at when closed_at is missing), `outcome` a won deal's (profit, ROI) when it has the figures."""

    row: dict[str, Any]
    status: str
    opened: datetime
    closed: datetime | None
    outcome: tuple[float, float] | None


def tenant_deals(session: Session, tenant_id: str) -> list[DealRecord]:
    """Every deal of the tenant, oldest first."""
    query = (select(Opportunity, Property, Lead)
             .join(Property, col(Property.id) == col(Opportunity.property_id), isouter=True)
             .join(Lead, col(Lead.id) == col(Opportunity.lead_id), isouter=True)
             .where(Opportunity.tenant_id == tenant_id).order_by(col(Opportunity.created_at), col(Opportunity.id)))
    records = []
    for deal, prop, lead in session.exec(query):
        status = "won" if deal.stage == WON else "lost" if deal.stage == LOST else "open"
        records.append(DealRecord(deal_row(deal, prop, lead), status, deal.created_at,
                                  None if status == "open" else deal.closed_at or deal.updated_at,
                                  realised_return(deal) if status == "won" else None))
    return records


def book_as_of(records: list[DealRecord], now: datetime, cutoff: datetime | None = None) -> BookRows:
    """The book to train on: every deal won (days to close, its return when it has the figures), lost (censored at
    its days until lost) or open (censored at its days so far). With a `cutoff`, the book as it stood then: the
    deals opened before it, those closed after it still open (censored at their days open by then)."""
    rows = BookRows()
    for r in records:
        if cutoff is not None and r.opened >= cutoff:
            continue
        if r.closed is not None and (cutoff is None or r.closed < cutoff):
            rows.add(r.row, r.status, days_between(r.opened, r.closed), r.outcome)
        else:
            rows.add(r.row, "open", days_between(r.opened, cutoff or now), None)
    return rows


def tenant_rows(session: Session, tenant_id: str, now: datetime | None = None) -> BookRows:
    """Every deal of the tenant as book_as_of reads them today."""
    return book_as_of(tenant_deals(session, tenant_id), now or utcnow())


def forecaster_for(models: DealModels, tenant_id: str) -> LoadedForecaster:
    """The tenant's active forecaster (the cold start when it has none). A forecast only reads: the tenant's own
    models are trained by the retraining (services/deal_retraining.py, its Schedule), never inside a request."""
    return models.ensure_active(tenant_id)


@dataclass
class DealForecast:
    closed: bool
    stage: str
    profit: dict[str, float] | None = None
    roi: dict[str, float] | None = None
    close_within: dict[str, float] | None = None
    median_days: float | None = None
    days_open: float | None = None
    outcome: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    basis: str = ""


def _basis(loaded: LoadedForecaster, min_closed: int, ready: int) -> str:
    m = loaded.metrics
    if loaded.kind == "cold_start":
        return (f"Cold start: trained on Dealflow's synthetic book of {m['n_deals']:,} deals, not on yours. Your own "
                f"deals take over at the next retraining once you have {min_closed} closed-won deals with their "
                f"figures (you have {ready}).")
    censored = m.get("n_open", 0) + m.get("n_lost", 0)
    source = "your imported past deals and your CRM's" if loaded.kind == "csv" else "your deals"
    return (f"Trained on {m['n_deals']:,} of {source}: {m['n_returns']:,} closed won with their figures for the "
            f"return, and {censored:,} still open or lost counted as not closed yet (censored) for the time to close.")


def forecast_deal(session: Session, models: DealModels, deal: Opportunity, min_closed: int,
                  now: datetime | None = None) -> DealForecast:
    """An open deal's forecast; a closed one answers what happened instead (`closed`, `outcome`)."""
    now = now or utcnow()
    if deal.stage in (WON, LOST):
        outcome = realised_return(deal) if deal.stage == WON else None
        end = deal.closed_at or deal.updated_at
        return DealForecast(closed=True, stage=deal.stage, outcome={
            "days_to_close": round(days_between(deal.created_at, end), 1), "closed_at": end,
            "profit": round(outcome[0], 2) if outcome else None, "roi": round(outcome[1], 6) if outcome else None},
            basis="The deal is closed: this is what happened, not a forecast.")
    loaded = forecaster_for(models, deal.tenant_id)
    prop = session.get(Property, deal.property_id) if deal.property_id else None
    lead = session.get(Lead, deal.lead_id) if deal.lead_id else None
    age = days_between(deal.created_at, now)
    answer = loaded.forecaster.forecast(deal_row(deal, prop, lead), age_days=age)
    m = loaded.metrics
    metrics = {k: m[k] for k in ("n_deals", "n_won", "n_returns", "n_open", "n_lost", "profit_pinball",
                                 "profit_pinball_baseline", "profit_coverage_80", "roi_pinball",
                                 "roi_pinball_baseline", "roi_coverage_80", "concordance", "sigma")
               if m.get(k) is not None}
    return DealForecast(
        closed=False, stage=deal.stage,
        profit={k: round(v, 2) for k, v in answer["profit"].items()},
        roi={k: round(v, 4) for k, v in answer["roi"].items()},
        close_within={k: round(v, 4) for k, v in answer["close_within"].items()},
        median_days=round(answer["median_days"], 1), days_open=round(age, 1),
        model={"version": loaded.version, "kind": loaded.kind, "trained_on": m.get("n_deals"),
               "trained_at": loaded.created_at, "metrics": metrics},
        basis=_basis(loaded, min_closed, closed_with_figures(session, deal.tenant_id)))


@dataclass
class DealTraining:
    version: int
    kind: str
    metrics: dict[str, Any]
    from_crm: int
    from_file: int


def train_deal_models(session: Session, models: DealModels, tenant_id: str, past: PastDeals | None = None,
                      progress: Progress | None = None) -> DealTraining:
    """Train the tenant's deal models now, on its CRM's deals plus an export's past deals when given (kind `csv`,
    else `crm_history`), and make them the active ones. A ValueError when there is too little to learn from."""
    rows = tenant_rows(session, tenant_id)
    from_crm = len(rows.deals)
    for deal, status, days, outcome in (past.rows if past else []):
        rows.add(deal, status, days, outcome)
    forecaster = train_forecaster(rows.book(), progress)
    kind = "csv" if past else "crm_history"
    with models.lock:
        version = models.register(tenant_id, forecaster, kind)
    return DealTraining(version=version, kind=kind, metrics=forecaster.metrics, from_crm=from_crm,
                        from_file=len(rows.deals) - from_crm)
