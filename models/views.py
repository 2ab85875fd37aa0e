"""What definitions see as `lead`: one plain-JSON view, used by the interpreter's activity and by trigger
filters in the API, so both evaluate conditions over exactly the same data."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from models.lead import Lead, Property
from models.opportunity import Opportunity


def lead_view(session: Session, lead: Lead) -> dict[str, Any]:
    data = lead.model_dump(mode="json", warnings=False, include={
        "id", "first_name", "last_name", "email", "phone", "source", "status", "score", "tags", "custom",
        "property_address", "assigned_to", "created_at"})
    prop = session.get(Property, lead.property_id) if lead.property_id else None
    data["state"] = prop.state if prop else None
    data["owner_name"] = prop.owner_name if prop else None
    return data


def deal_view(session: Session, deal: Opportunity) -> dict[str, Any]:
    data = deal.model_dump(mode="json", warnings=False, include={
        "id", "lead_id", "title", "pipeline", "stage", "asking_price", "offer_price", "contract_price", "arv",
        "repair_estimate", "assigned_to", "created_at"})
    return data
