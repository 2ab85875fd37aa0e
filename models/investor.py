"""Investors (buyers and capital partners) with accreditation and buy-box preferences."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as PydField
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import json_field, money_field, new_id, time_field
from models.contact import Email, Phone
from models.input import Input, OneLine


class Investor(SQLModel, table=True):
    __tablename__ = "investors"
    # One investor per address: POST /investors deduplicates on them, and these make it hold under races.
    __table_args__ = (UniqueConstraint("tenant_id", "email", name="uq_investors_tenant_email"),
                      UniqueConstraint("tenant_id", "phone", name="uq_investors_tenant_phone"),
                      # GET /investors, newest first, all or by status
                      Index("ix_investors_tenant_created", "tenant_id", "created_at", "id"),
                      Index("ix_investors_tenant_status", "tenant_id", "status", "created_at", "id"),
                      Index("ix_investors_tenant_owner", "tenant_id", "assigned_to", "created_at", "id"))
    id: str = Field(default_factory=lambda: new_id("iv"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    name: str = Field(max_length=200)
    company: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)
    accredited: bool = False
    accreditation_method: str | None = Field(default=None, max_length=64)  # income, net_worth, license, entity
    accreditation_verified_at: datetime | None = time_field(nullable=True, default_now=False)
    accreditation_expires_at: datetime | None = time_field(nullable=True, default_now=False)
    # Buy box: markets (states/zips), property types, price range, strategies (flip, rental, wholesale).
    preferences: dict[str, Any] = json_field()
    capital_available: Decimal | None = money_field()
    # Capital-raise progress: prospect -> contacted -> engaged -> committed | passed (see advance()).
    status: str = Field(default="prospect", max_length=20)
    source: str | None = Field(default=None, max_length=64)  # referral, event, website, ...
    tags: list[str] = json_field(default_factory=list)
    entity_type: str = Field(default="individual", max_length=20)  # an EntityType
    # The check sizes the investor writes (the buy box's; columns so that the list can filter on them).
    check_min: Decimal | None = money_field()
    check_max: Decimal | None = money_field()
    notes: str | None = Field(default=None, max_length=20_000)
    assigned_to: str | None = Field(default=None, foreign_key="users.id", max_length=40)  # the owner
    last_contacted_at: datetime | None = time_field(nullable=True, default_now=False)
    created_at: datetime = time_field()
    updated_at: datetime | None = time_field(nullable=True, default_now=False)


class EntityType(StrEnum):
    individual = "individual"
    joint = "joint"
    llc = "llc"
    trust = "trust"
    ira = "ira"


class InvestorStatus(StrEnum):
    prospect = "prospect"
    contacted = "contacted"
    engaged = "engaged"
    committed = "committed"
    passed = "passed"


# Events move an investor forward, never back (a first message sent: contacted; a reply or a meeting: engaged);
# committed and passed are final.
EVENT_STATUS = {"message.sent": InvestorStatus.contacted,
                "investor.replied": InvestorStatus.engaged, "meeting.booked": InvestorStatus.engaged,
                "investor.committed": InvestorStatus.committed, "investor.passed": InvestorStatus.passed}
_RANK = {"prospect": 0, "contacted": 1, "engaged": 2, "committed": 3, "passed": 3}


def advance(investor: Investor, event: str) -> bool:
    """Apply an event's status change; True when the status moved."""
    target = EVENT_STATUS.get(event)
    if target is None or _RANK[investor.status] >= _RANK[target.value]:
        return False
    investor.status = target.value
    return True


_MARKET = re.compile(r"^([A-Z]{2}|\d{5})$")


class BuyBox(BaseModel):
    """Where and what an investor buys (or lends on)."""

    model_config = ConfigDict(extra="forbid")
    markets: list[str] = PydField(default_factory=list, description="US states (TX) or ZIP codes (78731)")
    property_types: list[str] = PydField(default_factory=list)
    strategies: list[str] = PydField(default_factory=list, description="flip, rental, wholesale, lending, ...")
    price_min: Decimal | None = PydField(default=None, ge=0)
    price_max: Decimal | None = PydField(default=None, ge=0)
    target_return: Decimal | None = PydField(default=None, ge=0, le=5, description="a yearly rate: 0.12 is 12 %")
    hold_period_months: int | None = PydField(default=None, ge=0, le=600)
    risk: Literal["low", "medium", "high"] | None = None

    @field_validator("markets")
    @classmethod
    def _markets(cls, value: list[str]) -> list[str]:
        markets = [m.strip().upper() for m in value]
        bad = [original for original, m in zip(value, markets, strict=True) if not _MARKET.match(m)]
        if bad:
            raise ValueError(f"markets are two-letter states or five-digit ZIP codes, not {', '.join(bad)}")
        return markets


class InvestorCreate(Input):
    """Body of POST /investors. Deduplicated on email, then phone, within the tenant."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"name": "Ada Capital", "email": "ada@example.com", "accredited": True,
         "preferences": {"markets": ["TX"], "strategies": ["flip"]}}]})
    name: OneLine = PydField(min_length=1, max_length=200)
    company: OneLine | None = PydField(default=None, max_length=200)
    email: Email | None = None
    phone: Phone | None = None
    accredited: bool = False
    accreditation_method: Literal["income", "net_worth", "license", "entity"] | None = None
    capital_available: Decimal | None = PydField(default=None, ge=0, max_digits=14, decimal_places=2)
    preferences: BuyBox = PydField(default_factory=BuyBox)
    source: str | None = PydField(default=None, max_length=64)
    tags: list[Annotated[str, PydField(max_length=64)]] = PydField(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _reachable(self) -> InvestorCreate:
        if not self.email and not self.phone:
            raise ValueError("an investor needs an email or a phone")
        return self


Money = Annotated[Decimal, PydField(ge=0, le=Decimal("999999999999.99"), max_digits=14, decimal_places=2)]


class InvestorUpdate(Input):
    """Body of PATCH /investors/{id}: the fields sent change (null clears an optional one); `preferences` replaces
    the whole buy box."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: OneLine | None = PydField(default=None, min_length=1, max_length=200)
    company: OneLine | None = PydField(default=None, max_length=200)
    email: Email | None = None
    phone: Phone | None = None
    entity_type: EntityType | None = None
    check_min: Money | None = None
    check_max: Money | None = None
    capital_available: Money | None = None
    preferences: BuyBox | None = None
    notes: str | None = PydField(default=None, max_length=20_000)
    tags: list[Annotated[str, PydField(min_length=1, max_length=64)]] | None = PydField(default=None, max_length=50)
    source: str | None = PydField(default=None, max_length=64)
    assignee: str | None = PydField(default=None, max_length=320, description="the owner: a user's id or email, "
                                    "`me`, `round_robin` (investor relations by default), or null for nobody")
    team: Literal["acquisitions", "dispositions", "investor_relations"] | None = None


class InvestorPublic(BaseModel):
    id: str
    name: str
    company: str | None
    email: str | None
    phone: str | None
    accredited: bool
    accreditation_method: str | None
    capital_available: Decimal | None
    preferences: dict[str, Any]
    status: str
    source: str | None
    tags: list[str]
    entity_type: str = "individual"
    check_min: Decimal | None = None
    check_max: Decimal | None = None
    notes: str | None = None
    assigned_to: str | None = None
    accreditation_verified_at: datetime | None = None
    accreditation_expires_at: datetime | None = None
    last_contacted_at: datetime | None = None
    created_at: datetime
    updated_at: datetime | None = None
    duplicate: bool = False


class InvestorPage(BaseModel):
    items: list[InvestorPublic]
    next_cursor: str | None
