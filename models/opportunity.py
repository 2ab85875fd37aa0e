"""Opportunities (deals) moving through pipelines, their stage history and investor matches."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from definitions.vocabulary import Pipeline  # the language's vocabulary (set_stage, deal.stage)
from models.base import json_field, money_field, new_id, optional_json_field, time_field


CLOSED = {"closed_won", "closed_lost"}


class Opportunity(SQLModel, table=True):
    __tablename__ = "opportunities"
    # GET /opportunities, newest first: all, by stage, by pipeline, by assignee; stale-for: the open deals that
    # entered their stage longest ago first (tests/integration/test_lead_list_plans.py checks each plan)
    __table_args__ = (Index("ix_opportunities_tenant_created", "tenant_id", "created_at", "id"),
                      Index("ix_opportunities_tenant_stage", "tenant_id", "stage", "created_at", "id"),
                      Index("ix_opportunities_tenant_pipeline", "tenant_id", "pipeline", "created_at", "id"),
                      Index("ix_opportunities_tenant_assignee", "tenant_id", "assigned_to", "created_at", "id"),
                      Index("ix_opportunities_open_stage_entered", "tenant_id", "stage_entered_at", "id",
                            postgresql_where=text("closed_at IS NULL"), sqlite_where=text("closed_at IS NULL")))
    id: str = Field(default_factory=lambda: new_id("op"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    lead_id: str | None = Field(default=None, foreign_key="leads.id", index=True, max_length=40)
    property_id: str | None = Field(default=None, foreign_key="properties.id", max_length=40)
    title: str = Field(max_length=200)
    pipeline: str = Field(default=Pipeline.acquisition.value, sa_type=String(20))  # a Pipeline (str: see Lead.source)
    stage: str = Field(default="new", max_length=40)
    asking_price: Decimal | None = money_field()
    offer_price: Decimal | None = money_field()
    contract_price: Decimal | None = money_field()
    arv: Decimal | None = money_field()  # after-repair value
    repair_estimate: Decimal | None = money_field()
    # The disposition and what the deal cost (issue 11; scoring/deal_analysis.py reads them): a flip's resale
    # price, or for an assigned contract the fee the end buyer pays us (the seller still gets the contract price).
    sale_price: Decimal | None = money_field()
    assignment_fee: Decimal | None = money_field()
    closing_costs: Decimal | None = money_field()
    repairs_spent: Decimal | None = money_field()
    assigned_to: str | None = Field(default=None, foreign_key="users.id", max_length=40)
    workflow_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = time_field()
    updated_at: datetime = time_field()
    stage_entered_at: datetime = time_field()  # when it entered its current stage: stale-for, and SLAs' clock
    closed_at: datetime | None = time_field(nullable=True, default_now=False)


class StageChange(SQLModel, table=True):
    __tablename__ = "opportunity_stage_changes"
    id: str = Field(default_factory=lambda: new_id("sc"), primary_key=True, max_length=40)
    opportunity_id: str = Field(foreign_key="opportunities.id", index=True, max_length=40)
    from_stage: str | None = Field(default=None, max_length=40)
    to_stage: str = Field(max_length=40)
    actor: str = Field(max_length=200)
    reason: str | None = Field(default=None, max_length=500)
    changed_at: datetime = time_field()


class OpportunityMatch(SQLModel, table=True):
    __tablename__ = "opportunity_matches"
    __table_args__ = (UniqueConstraint("opportunity_id", "investor_id"),)
    id: str = Field(default_factory=lambda: new_id("om"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    opportunity_id: str = Field(foreign_key="opportunities.id", max_length=40)
    investor_id: str = Field(foreign_key="investors.id", index=True, max_length=40)
    score: float = 0.0
    reasons: list[dict[str, Any]] = json_field(default_factory=list)
    status: str = Field(default="proposed", max_length=20)  # proposed, sent, interested, passed
    # what the rules read when it was made (services/matching.py), frozen once the deal was sent: a learned
    # ranking trains on these, as known then
    facts: dict[str, Any] | None = optional_json_field()
    created_at: datetime = time_field()
