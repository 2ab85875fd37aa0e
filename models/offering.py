"""Capital raises: an offering on a deal and each investor's allocation in it.

An offering moves draft → open (soft commits only) → active (commitments, documents, funding) → closed. An
allocation moves soft_commit → committed (its subscription agreement signed and countersigned) → funded, or to
withdrawn; a commitment beyond the target waits in `waitlisted`, in commitment order, for a place to free up.
OfferingWorkflow decides every move (one workflow per offering orders all its commitments); these rows are what it
decided, for the API and the lists."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import money_field, new_id, time_field


class OfferingStatus(StrEnum):
    draft = "draft"
    open = "open"
    active = "active"
    closed = "closed"


OFFERING_MOVES = {"draft": {"open", "closed"}, "open": {"active", "closed"}, "active": {"closed"}, "closed": set()}


class AllocationStatus(StrEnum):
    soft_commit = "soft_commit"
    committed = "committed"
    waitlisted = "waitlisted"
    funded = "funded"
    withdrawn = "withdrawn"


class Offering(SQLModel, table=True):
    __tablename__ = "offerings"
    id: str = Field(default_factory=lambda: new_id("of"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    opportunity_id: str = Field(foreign_key="opportunities.id", index=True, max_length=40)
    title: str = Field(max_length=200)
    target_amount: Decimal = money_field()
    minimum_investment: Decimal = money_field()
    rule: str = Field(default="506c", max_length=8)  # 506b or 506c
    close_date: date | None = None
    status: str = Field(default=OfferingStatus.draft.value, max_length=20)
    workflow_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = time_field()
    updated_at: datetime = time_field()


class Allocation(SQLModel, table=True):
    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("offering_id", "investor_id", name="uq_allocations_offering_investor"),
                      Index("ix_allocations_investor", "investor_id"))
    id: str = Field(default_factory=lambda: new_id("al"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    offering_id: str = Field(foreign_key="offerings.id", max_length=40)
    investor_id: str = Field(foreign_key="investors.id", max_length=40)
    amount: Decimal = money_field()  # soft-committed, then committed
    status: str = Field(default=AllocationStatus.soft_commit.value, max_length=20)
    sequence: int | None = None  # commitment order (the workflow's), for the waitlist
    subscription_document_id: str | None = Field(default=None, foreign_key="documents.id", max_length=40)
    funded_amount: Decimal | None = money_field()
    funded_on: date | None = None
    funding_method: str | None = Field(default=None, max_length=10)  # wire, ach, check
    created_at: datetime = time_field()
    updated_at: datetime = time_field()
