"""Who a message goes to: a lead (with its property), an investor, or a staff user (a notification's email).
Messaging reads addresses, the time zone hint and the template context from here, so every kind of recipient
follows the same rules (consent, quiet hours, exactly-once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from models.investor import Investor
from models.lead import Lead, Property
from models.tenant import Tenant, User


@dataclass
class Recipient:
    tenant: Tenant
    lead: Lead | None = None
    investor: Investor | None = None
    prop: Property | None = None
    user: User | None = None

    @property
    def person(self) -> Lead | Investor | User:
        return self.lead or self.investor or self.user  # type: ignore[return-value]

    def address(self, channel: str) -> str | None:
        if self.user is not None:
            return self.user.email if channel == "email" else None  # staff are told by email (and in the app)
        return self.person.email if channel == "email" else self.person.phone

    @property
    def state(self) -> str | None:
        """The US state that hints at the recipient's zone: the property's for a lead; none for an investor."""
        return self.prop.state if self.prop else None

    def context(self) -> dict[str, Any]:
        """Template variables about the recipient (`lead` + `property`, `investor`, or `user`)."""
        if self.user is not None:
            user = self.user
            return {"user": {"id": user.id, "name": user.name, "first_name": user.name.split()[0] if user.name.split()
                             else "", "email": user.email, "role": user.role, "team": user.team}}
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
                   investor_id: str | None = None, user_id: str | None = None) -> Recipient:
    """Raises LookupError when the tenant or the person is missing (or is another tenant's)."""
    tenant = session.get(Tenant, tenant_id)
    if user_id and not (lead_id or investor_id):
        user = session.get(User, user_id)
        if tenant is None or user is None or user.tenant_id != tenant_id:
            raise LookupError(f"user {user_id} of tenant {tenant_id} not found")
        return Recipient(tenant=tenant, user=user)
    person = session.get(Lead, lead_id) if lead_id else session.get(Investor, investor_id) if investor_id else None
    if tenant is None or person is None or person.tenant_id != tenant_id:
        what = f"lead {lead_id}" if lead_id else f"investor {investor_id}"
        raise LookupError(f"{what} of tenant {tenant_id} not found")
    if isinstance(person, Investor):
        return Recipient(tenant=tenant, investor=person)
    return Recipient(tenant=tenant, lead=person,
                     prop=session.get(Property, person.property_id) if person.property_id else None)
