"""Who a message goes to: a lead (with its property) or an investor. Messaging reads addresses, the time
zone hint and the template context from here, so both kinds of recipient follow the same rules (consent,
quiet hours, exactly-once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from models.investor import Investor
from models.lead import Lead, Property
from models.tenant import Tenant


@dataclass
class Recipient:
    tenant: Tenant
    lead: Lead | None = None
    investor: Investor | None = None
    prop: Property | None = None

    @property
    def person(self) -> Lead | Investor:
        return self.lead or self.investor  # type: ignore[return-value]

    def address(self, channel: str) -> str | None:
        return self.person.email if channel == "email" else self.person.phone

    @property
    def state(self) -> str | None:
        """The US state that hints at the recipient's zone: the property's for a lead; none for an investor."""
        return self.prop.state if self.prop else None

    def context(self) -> dict[str, Any]:
        """Template variables about the recipient (`lead` + `property`, or `investor`)."""
        if self.investor is not None:
            investor = self.investor
            return {"investor": {"id": investor.id, "name": investor.name,
                                 "first_name": investor.name.split()[0] if investor.name.split() else "",
                                 "company": investor.company, "email": investor.email, "phone": investor.phone,
                                 "status": investor.status, "tags": investor.tags}}
        return {
            "lead": self.lead.model_dump(mode="json",
                                         include={"id", "first_name", "last_name", "email", "phone", "source",
                                                  "status", "tags", "property_address"}),
            "property": self.prop.model_dump(include={"street", "unit", "city", "state", "zip"}) if self.prop else None,
        }


def load_recipient(session: Session, tenant_id: str, lead_id: str | None = None,
                   investor_id: str | None = None) -> Recipient:
    """Raises LookupError when the tenant or the person is missing (or is another tenant's)."""
    tenant = session.get(Tenant, tenant_id)
    person = session.get(Lead, lead_id) if lead_id else session.get(Investor, investor_id) if investor_id else None
    if tenant is None or person is None or person.tenant_id != tenant_id:
        what = f"lead {lead_id}" if lead_id else f"investor {investor_id}"
        raise LookupError(f"{what} of tenant {tenant_id} not found")
    if isinstance(person, Investor):
        return Recipient(tenant=tenant, investor=person)
    return Recipient(tenant=tenant, lead=person,
                     prop=session.get(Property, person.property_id) if person.property_id else None)
