"""What definitions see as `lead`, `deal` and `investor`: one plain-JSON view each, used by the interpreter's
activities and by trigger filters in the API, so both evaluate conditions over exactly the same data."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from models.investor import Investor
from models.lead import Lead, Property
from models.opportunity import Opportunity


def lead_view(session: Session, lead: Lead) -> dict[str, Any]:
    data = lead.model_dump(mode="json", include={
        "id", "first_name", "last_name", "email", "phone", "source", "status", "score", "tags", "custom",
        "property_address", "assigned_to", "created_at"})
    prop = session.get(Property, lead.property_id) if lead.property_id else None
    data["state"] = prop.state if prop else None
    data["owner_name"] = prop.owner_name if prop else None
    return data


def deal_view(session: Session, deal: Opportunity) -> dict[str, Any]:
    data = deal.model_dump(mode="json", include={
        "id", "lead_id", "title", "pipeline", "stage", "asking_price", "offer_price", "contract_price", "arv",
        "repair_estimate", "assigned_to", "created_at"})
    return data


def investor_view(investor: Investor) -> dict[str, Any]:
    """What definitions about investors see as `investor` (money as numbers, so conditions can compare)."""
    data = investor.model_dump(mode="json", include={
        "id", "name", "company", "email", "phone", "accredited", "accreditation_method", "preferences", "status",
        "source", "tags", "created_at"})
    data["capital_available"] = float(investor.capital_available) if investor.capital_available is not None else None
    data["accreditation_expires_at"] = (investor.accreditation_expires_at.isoformat()
                                        if investor.accreditation_expires_at else None)
    return data
