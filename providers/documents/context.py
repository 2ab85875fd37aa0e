"""What a document template is rendered over, read from the CRM: the deal, its property, the seller (the deal's
lead), the investor, the tenant, and the terms the requester gives (closing date, earnest money, ...).

Every value is plain data (str, Decimal, date, bool); None means missing, and the template names it if it needs
it. The tenant's legal name, signatory and address are not stored on the tenant row yet: they come in
`tenant_profile` from the caller (a document request, a tenant setting), and the tenant's display name stands in
for the legal name when none is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session

from models.investor import Investor
from models.lead import Lead, Property
from models.opportunity import Opportunity
from models.tenant import Tenant


class ContextNotFound(LookupError):
    """A row the document is about is missing (or is another tenant's)."""


def _own(session: Session, model, row_id: str | None, tenant_id: str, what: str):
    row = session.get(model, row_id) if row_id else None
    if row is None or row.tenant_id != tenant_id:
        raise ContextNotFound(f"{what} {row_id} not found")
    return row


def property_values(row: Property | None) -> dict[str, Any] | None:
    if row is None:
        return None
    street = f"{row.street} {row.unit}" if row.unit else row.street
    return {"id": row.id, "street": row.street, "unit": row.unit, "city": row.city, "state": row.state,
            "zip": row.zip, "county": row.county, "apn": row.apn, "property_type": row.property_type,
            "beds": row.beds, "baths": row.baths, "sqft": row.sqft, "year_built": row.year_built,
            "address": f"{street}, {row.city}, {row.state} {row.zip}"}


def deal_values(deal: Opportunity) -> dict[str, Any]:
    return {"id": deal.id, "title": deal.title, "pipeline": deal.pipeline, "stage": deal.stage,
            "asking_price": deal.asking_price, "offer_price": deal.offer_price, "contract_price": deal.contract_price,
            "purchase_price": deal.contract_price, "sale_price": deal.sale_price,
            "assignment_fee": deal.assignment_fee, "closing_costs": deal.closing_costs, "arv": deal.arv,
            "repair_estimate": deal.repair_estimate, "repairs_spent": deal.repairs_spent}


def seller_values(lead: Lead | None) -> dict[str, Any] | None:
    if lead is None:
        return None
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p).strip()
    return {"id": lead.id, "name": name or None, "first_name": lead.first_name or None,
            "last_name": lead.last_name or None, "email": lead.email, "phone": lead.phone,
            "address": lead.property_address}


def investor_values(investor: Investor | None) -> dict[str, Any] | None:
    if investor is None:
        return None
    method = {"net_worth": "net worth", "income": "income", "license": "professional licence",
              "entity": "entity status"}.get(investor.accreditation_method or "", investor.accreditation_method)
    return {"id": investor.id, "name": investor.name, "company": investor.company, "email": investor.email,
            "phone": investor.phone, "accredited": investor.accredited,
            # only an accredited investor has a basis to state (a subscription agreement needs it)
            "accreditation_method": method if investor.accredited else None,
            "capital_available": investor.capital_available}


def document_context(session: Session, *, tenant_id: str, document_id: str, opportunity_id: str | None = None,
                     investor_id: str | None = None, terms: Mapping[str, Any] | None = None,
                     tenant_profile: Mapping[str, Any] | None = None, today: date | None = None) -> dict[str, Any]:
    """The context of one document. Raises ContextNotFound for a deal or investor that is not the tenant's."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise ContextNotFound(f"tenant {tenant_id} not found")
    profile = dict(tenant_profile or {})
    context: dict[str, Any] = {
        "document": {"id": document_id, "date": today or datetime.now(UTC).date()},
        "tenant": {"id": tenant.id, "name": tenant.name, **profile,
                   "legal_name": profile.get("legal_name") or tenant.name},
        "terms": dict(terms or {}),
    }
    if opportunity_id:
        deal = _own(session, Opportunity, opportunity_id, tenant_id, "opportunity")
        context["deal"] = deal_values(deal)
        lead = session.get(Lead, deal.lead_id) if deal.lead_id else None
        context["seller"] = seller_values(lead)
        property_id = deal.property_id or (lead.property_id if lead else None)
        context["property"] = property_values(session.get(Property, property_id) if property_id else None)
    if investor_id:
        context["investor"] = investor_values(_own(session, Investor, investor_id, tenant_id, "investor"))
    return context
