"""Investor matching: which of a tenant's investors a deal fits — their buy box (markets, price range,
property types), the capital they have free, accreditation — with the reasons, stored as
`opportunity_matches` so dispositions (or a definition) know whom to send the deal to.

A criterion the investor left empty does not exclude anything; a criterion the deal cannot be checked
against (no property, no price) does not exclude either, but earns nothing. Investors who passed are left
out. The score is the share of the possible points the investor earned (market, price, property type,
enough capital, accredited), so a precise buy box that fits ranks above "anything, anywhere".

With what the database knows beyond the buy box (`Context`, built by `match_investors`), the deal's open capital
raise adds hard constraints — eligible under its Rule 506(b)/(c) now, a check size that can meet its minimum and
fit what is left to raise — and three more points: the check size fits, the deal's projected return meets the
investor's target, they have funded deals with us before, and they replied within 30 days. Each earned or missed
point says why ("target 12 % vs projected 14.1 %", "last replied 12 days ago").

From `MIN_OUTCOMES` past investor–deal outcomes on (matches of deals whose raise has closed: did the investor
commit or fund?), a model learned from them (scoring/match_ranking.py) orders the fits instead of the points,
but only when, on held-out deals, its AUC beats the rule score's; the reasons stay the rules' and say so.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import exists, func
from sqlmodel import Session, col, select

from models.base import utcnow
from models.investor import Investor
from models.lead import Property
from models.message import Message
from models.offering import Allocation, Offering
from models.opportunity import Opportunity, OpportunityMatch

POINTS = 5  # market, price, property type, capital, accredited


RECENT_REPLY = timedelta(days=30)
MIN_OUTCOMES = 200  # past investor–deal outcomes before a learned ranking is even tried (issue 12)


@dataclass
class Raise:
    """The deal's open capital raise, as matching needs it."""

    rule: str  # 506b or 506c
    minimum: Decimal
    remaining: Decimal


@dataclass
class Context:
    """What the database says beyond the buy box (None where unknown)."""

    raise_: Raise | None = None
    eligibility: dict[str, str | None] = field(default_factory=dict)  # investor id -> why not (None: eligible)
    projected_return: Decimal | None = None  # the deal's (flip ROI, else cash-on-cash)
    past_investments: dict[str, int] = field(default_factory=dict)  # investor id -> deals funded before
    last_reply: dict[str, datetime] = field(default_factory=dict)  # investor id -> their last inbound message
    now: datetime = field(default_factory=utcnow)


@dataclass
class Fit:
    investor: Investor
    points: int = 0
    possible: int = POINTS
    reasons: list[str] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)  # what the learned ranking reads (NaN: unknown)
    learned: float | None = None  # the learned ranking's probability, where it is used

    @property
    def rule_score(self) -> float:
        return round(self.points / self.possible, 2)

    @property
    def score(self) -> float:
        return round(self.learned, 2) if self.learned is not None else self.rule_score


def deal_price(deal: Opportunity) -> Decimal | None:
    """What the investor would pay or fund: the contract price, else our offer, else the asking price."""
    return deal.contract_price or deal.offer_price or deal.asking_price


def _money(value) -> str:
    return f"${Decimal(value):,.0f}"


def fit(investor: Investor, deal: Opportunity, prop: Property | None, context: Context | None = None) -> Fit | None:
    """None when the deal is outside the investor's buy box (or, with a raise, they cannot take part in it)."""
    box, result = investor.preferences or {}, Fit(investor)
    facts = result.facts
    markets = [str(m).upper() for m in box.get("markets") or []]
    if markets and prop is not None:
        where = prop.state if prop.state in markets else (prop.zip[:5] if prop.zip[:5] in markets else None)
        if where is None:
            return None
        result.points += 1
        facts["market"] = 1.0
        result.reasons.append(f"buys in {where}")
    price = deal_price(deal)
    low, high = box.get("price_min"), box.get("price_max")
    if price is not None and (low is not None or high is not None):
        if (low is not None and price < Decimal(str(low))) or (high is not None and price > Decimal(str(high))):
            return None
        result.points += 1
        facts["price"] = 1.0
        bounds = (f"within {_money(low)}–{_money(high)}" if low is not None and high is not None
                  else f"up to {_money(high)}" if high is not None else f"from {_money(low)}")
        result.reasons.append(f"{_money(price)} {bounds}")
    types = [str(t).lower() for t in box.get("property_types") or []]
    if types and prop is not None and prop.property_type:
        if prop.property_type.lower() not in types:
            return None
        result.points += 1
        facts["property_type"] = 1.0
        result.reasons.append(f"buys {prop.property_type}")
    # With a raise the investor funds a share: their capital must cover its minimum, not the whole price.
    needed = context.raise_.minimum if context is not None and context.raise_ is not None else price
    if needed is not None and investor.capital_available is not None:
        if investor.capital_available < needed:
            return None
        result.points += 1
        facts["capital"] = 1.0
        if needed > 0:
            facts["capital_multiple"] = float(investor.capital_available / needed)
        result.reasons.append(f"{_money(investor.capital_available)} available")
    if investor.accredited:
        result.points += 1
        result.reasons.append("accredited")
    facts["accredited"] = 1.0 if investor.accredited else 0.0
    if context is not None and not _context_fit(investor, box, context, result):
        return None
    facts["rule_score"] = result.rule_score
    return result


def _pct(value: Decimal) -> str:
    return f"{Decimal(value) * 100:.1f}".rstrip("0").rstrip(".") + " %"


def _context_fit(investor: Investor, box: dict, context: Context, result: Fit) -> bool:
    raise_ = context.raise_
    if raise_ is not None:
        if context.eligibility.get(investor.id):
            return False  # not eligible under the raise's rule now (accreditation)
        low, high = investor.check_min, investor.check_max
        if (high is not None and high < raise_.minimum) or (low is not None and low > raise_.remaining):
            return False  # their checks cannot meet the minimum, or are bigger than what is left
        result.possible += 1
        if high is not None and raise_.minimum > 0:
            result.facts["check_multiple"] = float(high / raise_.minimum)
        if low is not None or high is not None:
            result.points += 1
            result.facts["check_fit"] = 1.0
            size = (f"{_money(low)}–{_money(high)}" if low is not None and high is not None
                    else f"up to {_money(high)}" if high is not None else f"from {_money(low)}")
            result.reasons.append(f"check size {size} fits (minimum {_money(raise_.minimum)}, "
                                  f"{_money(raise_.remaining)} left)")
    target = box.get("target_return")
    if target is not None and context.projected_return is not None:
        result.possible += 1
        target = Decimal(str(target))
        result.facts["return_margin"] = float(context.projected_return - target)
        result.facts["return_met"] = 1.0 if context.projected_return >= target else 0.0
        if context.projected_return >= target:
            result.points += 1
        result.reasons.append(f"target {_pct(target)} vs projected {_pct(context.projected_return)}")
    result.possible += 2  # history with us, and a recent reply
    deals = context.past_investments.get(investor.id, 0)
    result.facts["past_deals"] = float(deals)
    if deals:
        result.points += 1
        result.reasons.append(f"invested in {deals} deal{'s' if deals > 1 else ''} with us before")
    replied = context.last_reply.get(investor.id)
    if replied is not None:
        days = max((context.now - replied).days, 0)
        result.facts["days_since_reply"] = float(days)
        if context.now - replied <= RECENT_REPLY:
            result.points += 1
        result.reasons.append(f"last replied {days} day{'s' if days != 1 else ''} ago")
    return True


def build_context(session: Session, deal: Opportunity, investor_ids: list[str],
                  projected_return: Decimal | None = None) -> Context:
    """The deal's open raise (its eligibility per investor, what is left), the investors' past fundings and
    last replies, in three queries."""
    from services.accreditation import commitment_problem
    from services.offerings import totals

    context = Context(projected_return=projected_return)
    offering = session.exec(select(Offering).where(Offering.opportunity_id == deal.id,
                                                   col(Offering.status).in_(["draft", "open", "active"]))
                            .order_by(col(Offering.created_at).desc())).first()
    if offering is not None:
        rows = list(session.exec(select(Allocation).where(Allocation.offering_id == offering.id)))
        context.raise_ = Raise(rule=offering.rule, minimum=offering.minimum_investment,
                               remaining=totals(rows, offering.target_amount)["remaining"])
        for investor in session.exec(select(Investor).where(col(Investor.id).in_(investor_ids))):
            context.eligibility[investor.id] = commitment_problem(session, investor, offering.rule)
    if investor_ids:
        context.past_investments = dict(session.exec(
            select(Allocation.investor_id, func.count(func.distinct(Allocation.offering_id)))
            .where(col(Allocation.investor_id).in_(investor_ids), Allocation.status == "funded")
            .group_by(Allocation.investor_id)).all())
        context.last_reply = dict(session.exec(
            select(Message.investor_id, func.max(Message.created_at))
            .where(col(Message.investor_id).in_(investor_ids), Message.direction == "inbound")
            .group_by(Message.investor_id)).all())
    return context


def match_investors(session: Session, deal: Opportunity, limit: int = 10,
                    accredited_only: bool = False) -> list[Fit]:
    """The best `limit` fits, stored (or refreshed) as opportunity_matches; the caller commits. A match's
    status (proposed, sent, interested, passed) is kept when it is refreshed."""
    from scoring.deal_analysis import analyse_deal

    prop = session.get(Property, deal.property_id) if deal.property_id else None
    query = select(Investor).where(Investor.tenant_id == deal.tenant_id, Investor.status != "passed")
    if accredited_only:
        query = query.where(col(Investor.accredited).is_(True))
    investors = list(session.exec(query))
    metrics = analyse_deal(deal).metrics
    projected = next((metrics[m].value for m in ("flip_roi", "cash_on_cash") if m in metrics), None)
    context = build_context(session, deal, [i.id for i in investors], projected)
    fits = [f for f in (fit(i, deal, prop, context) for i in investors) if f is not None]
    ranker = learned_ranking(session, deal.tenant_id)
    if ranker is not None and ranker.better and fits:
        for f, p in zip(fits, ranker.predict([f.facts for f in fits]), strict=True):
            f.learned = p
            f.reasons.append(ranker.summary)
    fits.sort(key=lambda f: (-f.score, -f.points, f.investor.name, f.investor.id))
    fits = fits[:limit]
    existing = {m.investor_id: m for m in session.exec(select(OpportunityMatch).where(
        OpportunityMatch.opportunity_id == deal.id))}
    for f in fits:
        row = existing.get(f.investor.id) or OpportunityMatch(tenant_id=deal.tenant_id, opportunity_id=deal.id,
                                                              investor_id=f.investor.id)
        row.score, row.reasons = f.score, [{"text": r} for r in f.reasons]
        if row.status == "proposed":  # frozen once the deal is sent: what was known when the investor was approached
            row.facts = {k: v for k, v in f.facts.items() if isinstance(v, int | float) and math.isfinite(v)}
        session.add(row)
    return fits


APPROACHED = ("sent", "interested", "passed")  # the investor was written to about the deal


def outcome_history(session: Session, tenant_id: str) -> tuple[list[dict[str, float]], list[int], list[str]]:
    """The tenant's past investor–deal outcomes: the matches of deals whose raise has closed whose investor was
    approached (the deal sent to them), each with the facts stored when it was made (frozen once sent: nothing
    the outcome wrote, such as an accreditation recorded to commit or a funding, is among them), labelled 1 when
    the investor committed or funded in that raise."""
    closed = exists().where(Offering.opportunity_id == OpportunityMatch.opportunity_id, Offering.status == "closed")
    won = exists().where(Allocation.investor_id == OpportunityMatch.investor_id,
                         Allocation.offering_id == Offering.id,
                         Offering.opportunity_id == OpportunityMatch.opportunity_id, Offering.status == "closed",
                         col(Allocation.status).in_(["committed", "funded"]))
    rows = session.exec(
        select(OpportunityMatch.facts, OpportunityMatch.opportunity_id, won.label("won"))
        .where(OpportunityMatch.tenant_id == tenant_id, col(OpportunityMatch.status).in_(APPROACHED),
               col(OpportunityMatch.facts).is_not(None), closed)
        .order_by(col(OpportunityMatch.opportunity_id), col(OpportunityMatch.investor_id))).all()
    facts, labels, deals = [], [], []
    for stored, deal_id, winner in rows:
        facts.append({k: float(v) for k, v in stored.items() if isinstance(v, int | float)})
        labels.append(1 if winner else 0)
        deals.append(deal_id)
    return facts, labels, deals


_RANKERS: dict[str, tuple[tuple, object]] = {}  # tenant -> (what it was trained on, the Ranker or None)
_RANKERS_LOCK = threading.Lock()


def learned_ranking(session: Session, tenant_id: str):
    """The tenant's learned ranking (scoring/match_ranking.Ranker), or None below MIN_OUTCOMES. Trained again
    only when its outcomes change (approached matches of closed raises, their raises' last move): cached per
    tenant, the answer "not enough" too."""
    from scoring.match_ranking import train

    marker = tuple(session.exec(
        select(func.count(OpportunityMatch.id), func.max(Offering.updated_at))
        .join(Offering, Offering.opportunity_id == OpportunityMatch.opportunity_id)
        .where(OpportunityMatch.tenant_id == tenant_id, Offering.status == "closed",
               col(OpportunityMatch.status).in_(APPROACHED), col(OpportunityMatch.facts).is_not(None))).one())
    with _RANKERS_LOCK:
        cached = _RANKERS.get(tenant_id)
        if cached is not None and cached[0] == marker:
            return cached[1]
    ranker = None
    if (marker[0] or 0) >= MIN_OUTCOMES:
        rows, labels, deals = outcome_history(session, tenant_id)
        ranker = train(rows, labels, deals) if len(labels) >= MIN_OUTCOMES else None
    with _RANKERS_LOCK:
        _RANKERS[tenant_id] = (marker, ranker)
    return ranker
