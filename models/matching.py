"""Investor matching: which of a tenant's investors a deal fits — their buy box (markets, price range,
property types), the capital they have free, accreditation — with the reasons, stored as
`opportunity_matches` so dispositions (or a definition) know whom to send the deal to.

A criterion the investor left empty does not exclude anything; a criterion the deal cannot be checked
against (no property, no price) does not exclude either, but earns nothing. Investors who passed are left
out. The score is the share of the possible points the investor earned (market, price, property type,
enough capital, accredited), so a precise buy box that fits ranks above "anything, anywhere".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlmodel import Session, col, select

from models.investor import Investor
from models.lead import Property
from models.opportunity import Opportunity, OpportunityMatch

POINTS = 5  # market, price, property type, capital, accredited


@dataclass
class Fit:
    investor: Investor
    points: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(self.points / POINTS, 2)


def deal_price(deal: Opportunity) -> Decimal | None:
    """What the investor would pay or fund: the contract price, else our offer, else the asking price."""
    return deal.contract_price or deal.offer_price or deal.asking_price


def _money(value) -> str:
    return f"${Decimal(value):,.0f}"


def fit(investor: Investor, deal: Opportunity, prop: Property | None) -> Fit | None:
    """None when the deal is outside the investor's buy box."""
    box, result = investor.preferences or {}, Fit(investor)
    markets = [str(m).upper() for m in box.get("markets") or []]
    if markets and prop is not None:
        where = prop.state if prop.state in markets else (prop.zip[:5] if prop.zip[:5] in markets else None)
        if where is None:
            return None
        result.points += 1
        result.reasons.append(f"buys in {where}")
    price = deal_price(deal)
    low, high = box.get("price_min"), box.get("price_max")
    if price is not None and (low is not None or high is not None):
        if (low is not None and price < Decimal(str(low))) or (high is not None and price > Decimal(str(high))):
            return None
        result.points += 1
        bounds = (f"within {_money(low)}–{_money(high)}" if low is not None and high is not None
                  else f"up to {_money(high)}" if high is not None else f"from {_money(low)}")
        result.reasons.append(f"{_money(price)} {bounds}")
    types = [str(t).lower() for t in box.get("property_types") or []]
    if types and prop is not None and prop.property_type:
        if prop.property_type.lower() not in types:
            return None
        result.points += 1
        result.reasons.append(f"buys {prop.property_type}")
    if price is not None and investor.capital_available is not None:
        if investor.capital_available < price:
            return None
        result.points += 1
        result.reasons.append(f"{_money(investor.capital_available)} available")
    if investor.accredited:
        result.points += 1
        result.reasons.append("accredited")
    return result


def match_investors(session: Session, deal: Opportunity, limit: int = 10,
                    accredited_only: bool = False) -> list[Fit]:
    """The best `limit` fits, stored (or refreshed) as opportunity_matches; the caller commits. A match's
    status (proposed, sent, interested, passed) is kept when it is refreshed."""
    prop = session.get(Property, deal.property_id) if deal.property_id else None
    query = select(Investor).where(Investor.tenant_id == deal.tenant_id, Investor.status != "passed")
    if accredited_only:
        query = query.where(col(Investor.accredited).is_(True))
    fits = [f for f in (fit(i, deal, prop) for i in session.exec(query)) if f is not None]
    fits.sort(key=lambda f: (-f.points, f.investor.name, f.investor.id))
    fits = fits[:limit]
    existing = {m.investor_id: m for m in session.exec(select(OpportunityMatch).where(
        OpportunityMatch.opportunity_id == deal.id))}
    for f in fits:
        row = existing.get(f.investor.id) or OpportunityMatch(tenant_id=deal.tenant_id, opportunity_id=deal.id,
                                                              investor_id=f.investor.id)
        row.score, row.reasons = f.score, [{"text": r} for r in f.reasons]
        session.add(row)
    return fits
