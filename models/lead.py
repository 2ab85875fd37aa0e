"""Leads and the properties they are about, with their API schemas."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field as PydField, field_validator, model_validator
from sqlalchemy import Index, String, and_, literal_column, text
from sqlmodel import Field, SQLModel

from definitions.vocabulary import LeadStatus  # the language's vocabulary (set_status, lead.status)
from models.base import json_field, money_field, new_id, optional_json_field, time_field
from models.contact import Email, Phone, PostalAddress, parse_address
from models.input import Input, OneLine


# Status moves staff may make (POST /leads/{id}/status); conversion happens only through /convert.
STATUS_MOVES: dict[str, set[str]] = {
    "new": {"contacted", "nurturing", "qualified", "dead", "needs_review"},
    "contacted": {"nurturing", "qualified", "dead"},
    "nurturing": {"contacted", "qualified", "dead"},
    "qualified": {"nurturing", "dead"},
    "dead": {"nurturing"},  # reopen
    "needs_review": {"new", "dead"},
    "converted": set(),
}


def status_change_problem(current: str, target: str) -> str | None:
    if target not in STATUS_MOVES:
        return f"unknown status {target!r} (statuses: {', '.join(STATUS_MOVES)})"
    if target == "converted":
        return "a lead becomes converted only through POST /leads/{id}/convert"
    if target == current:
        return f"the lead is already {target}"
    if target not in STATUS_MOVES.get(current, set()):
        allowed = ", ".join(sorted(STATUS_MOVES.get(current, set()))) or "none"
        return f"cannot move a {current} lead to {target} (allowed: {allowed})"
    return None


class LeadSource(StrEnum):
    web_form = "web_form"
    referral = "referral"
    direct_mail = "direct_mail"
    cold_call = "cold_call"
    ppc = "ppc"
    driving_for_dollars = "driving_for_dollars"
    sms = "sms"
    bandit_sign = "bandit_sign"
    seo = "seo"
    social = "social"
    list_import = "list_import"
    other = "other"


class Property(SQLModel, table=True):
    __tablename__ = "properties"
    # One row per address: concurrent intakes about one house share it (the database decides).
    __table_args__ = (Index("ix_properties_tenant_address", "tenant_id", "normalized_address", unique=True),)
    id: str = Field(default_factory=lambda: new_id("pr"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    street: str = Field(max_length=200)
    unit: str | None = Field(default=None, max_length=40)
    city: str = Field(max_length=100)
    state: str = Field(max_length=2)
    zip: str = Field(max_length=10)
    county: str | None = Field(default=None, max_length=100)
    apn: str | None = Field(default=None, max_length=64)  # assessor's parcel number
    normalized_address: str = Field(max_length=400)
    property_type: str | None = Field(default=None, max_length=40)
    beds: int | None = None
    baths: float | None = None
    sqft: int | None = None
    year_built: int | None = None
    estimated_value: Decimal | None = money_field()
    owner_name: str | None = Field(default=None, max_length=200)
    facts: dict[str, Any] = json_field()
    created_at: datetime = time_field()


ORIGINAL = and_(text("duplicate_of IS NULL"), text("deleted_at IS NULL"))  # a live lead that is nobody's duplicate


def _list_index(name: str, *columns: str, scored: bool = False) -> Index:
    where = ORIGINAL & text("score IS NOT NULL") if scored else ORIGINAL
    return Index(name, "tenant_id", *columns, "id", sqlite_where=where, postgresql_where=where)


class Lead(SQLModel, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_tenant_email", "tenant_id", "email"),
        Index("ix_leads_tenant_phone", "tenant_id", "phone"),
        Index("ix_leads_tenant_created", "tenant_id", "created_at", "id"),
        # The lead list (services/lead_lists.py): one index per filter, in (filter, sort key, id) order, over the
        # live originals the list shows by default; by score only the scored ones. The search's trigram index is
        # Postgres-only and made by migration 0008 (on LEAD_SEARCH_TEXT; SQLite scans).
        _list_index("ix_leads_list_created", "created_at"),
        _list_index("ix_leads_list_score", "score", scored=True),
        _list_index("ix_leads_list_status", "status", "created_at"),
        _list_index("ix_leads_list_status_score", "status", "score", scored=True),
        _list_index("ix_leads_list_source", "source", "created_at"),
        _list_index("ix_leads_list_assigned", "assigned_to", "created_at"),
        # The leads linked to an original (its timeline merges theirs; merging and the dedupe migration read it)
        Index("ix_leads_duplicate_of", "duplicate_of", sqlite_where=text("duplicate_of IS NOT NULL"),
              postgresql_where=text("duplicate_of IS NOT NULL")),
        # One original lead per person: at most one live, non-duplicate lead per normalised email and per phone.
        # Intake stores a concurrent second submission as a duplicate of the one these let in.
        Index("uq_leads_original_email", "tenant_id", "email", unique=True,
              sqlite_where=ORIGINAL & text("email IS NOT NULL"), postgresql_where=ORIGINAL & text("email IS NOT NULL")),
        Index("uq_leads_original_phone", "tenant_id", "phone", unique=True,
              sqlite_where=ORIGINAL & text("phone IS NOT NULL"), postgresql_where=ORIGINAL & text("phone IS NOT NULL")),
    )
    id: str = Field(default_factory=lambda: new_id("ld"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)  # E.164
    property_id: str | None = Field(default=None, foreign_key="properties.id", max_length=40)
    property_address: str | None = Field(default=None, max_length=400)  # normalised one line
    # Plain strings in the table (a row read back holds str, not the enum): typed as the enum, every dump of a
    # lead warned PydanticSerializationUnexpectedValue. The API schemas (LeadCreate, LeadPublic) keep the enums.
    source: str = Field(sa_type=String(32))  # a LeadSource
    status: str = Field(default=LeadStatus.new.value, sa_type=String(20))  # a LeadStatus
    status_reason: str | None = Field(default=None, max_length=500)
    score: float | None = None
    score_model_version: str | None = Field(default=None, max_length=64)
    score_explanation: list[dict[str, Any]] | None = optional_json_field()
    scored_at: datetime | None = time_field(nullable=True, default_now=False)
    # Contact validation, standardised address and property/owner facts, with each source's outcome.
    enrichment: dict[str, Any] | None = optional_json_field()
    enriched_at: datetime | None = time_field(nullable=True, default_now=False)
    assigned_to: str | None = Field(default=None, foreign_key="users.id", max_length=40)
    tags: list[str] = json_field(default_factory=list)
    custom: dict[str, Any] = json_field()
    notes: str | None = None
    duplicate_of: str | None = Field(default=None, foreign_key="leads.id", max_length=40)
    workflow_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = time_field()
    updated_at: datetime = time_field()
    deleted_at: datetime | None = time_field(nullable=True, default_now=False)


# What the lead search looks in: one expression, so that one trigram index (Postgres) serves it.
LEAD_SEARCH_TEXT = literal_column(
    "lower(first_name || ' ' || last_name || ' ' || coalesce(email, '') || ' ' || coalesce(property_address, '')"
    " || ' ' || coalesce(phone, ''))", String)


def lead_workflow_id(tenant_id: str, lead_id: str) -> str:
    return f"lead-{tenant_id}-{lead_id}"


# The fields POST /leads and PATCH /leads/{id} share, with the same caps (PATCH had none: 5 MB of notes and
# 10,000 tags went in).
Name = Annotated[OneLine, PydField(max_length=100)]
Notes = Annotated[str, PydField(max_length=10_000)]
Tags = Annotated[list[Annotated[str, PydField(max_length=64)]], PydField(max_length=50)]


def normalise_tags(value: list[str] | None) -> list[str] | None:
    return None if value is None else sorted({t.strip().lower() for t in value if t.strip()})


class LeadCreate(Input):
    """Body of POST /leads. Phones in any common format; one-line or structured property address."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"first_name": "Maria", "last_name": "Garcia", "email": "maria.garcia@example.com",
         "phone": "(512) 555-0142", "source": "web_form", "property_address": "4500 Oak Ridge Dr, Austin, TX 78731"},
        {"first_name": "Sam", "phone": "+17135550188", "source": "ppc", "tags": ["vacant"]}]})

    first_name: Name = ""
    last_name: Name = ""
    email: Email | None = None
    phone: Phone | None = None
    source: LeadSource
    property_address: OneLine | None = PydField(default=None, max_length=400)
    property: PostalAddress | None = None
    notes: Notes | None = None
    tags: Tags = PydField(default_factory=list)
    custom: dict[str, Any] = PydField(default_factory=dict)

    @field_validator("property_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if not value:
            return None
        parse_address(value)  # raises ValueError -> 422 on this field
        return value

    _tags = field_validator("tags")(normalise_tags)

    @model_validator(mode="after")
    def _reachable(self) -> LeadCreate:
        if not (self.email or self.phone):
            raise ValueError("a lead needs an email or a phone")
        if self.property_address and self.property:
            raise ValueError("give property_address or property, not both")
        if not (self.first_name or self.last_name or self.email):
            raise ValueError("a lead needs a name or an email")
        return self

    def postal_address(self) -> PostalAddress | None:
        if self.property:
            return self.property
        return parse_address(self.property_address) if self.property_address else None


class LeadUpdate(Input):
    """Only the fields sent change. Names, tags and custom cannot be null (their columns are not): send "", []
    or {} to clear them; email and phone can, as long as the lead keeps one of them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: Name = PydField(default=None)  # type: ignore[assignment]  # None: not sent
    last_name: Name = PydField(default=None)  # type: ignore[assignment]
    email: Email | None = None
    phone: Phone | None = None
    notes: Notes | None = None
    tags: Tags = PydField(default=None)  # type: ignore[assignment]
    custom: dict[str, Any] = PydField(default=None)  # type: ignore[assignment]
    assigned_to: str | None = PydField(default=None, max_length=40, description="a user id of the tenant")

    _tags = field_validator("tags")(normalise_tags)


class PropertyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    street: str
    unit: str | None
    city: str
    state: str
    zip: str
    normalized_address: str


class LeadPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    property_address: str | None
    property: PropertyPublic | None = None
    source: LeadSource
    status: LeadStatus
    status_reason: str | None
    score: float | None
    score_model_version: str | None
    score_explanation: list[dict[str, Any]] | None
    assigned_to: str | None
    tags: list[str]
    custom: dict[str, Any]
    notes: str | None
    duplicate_of: str | None
    workflow_id: str | None
    scored_at: datetime | None = None
    enrichment: dict[str, Any] | None = None
    # Detail view only (GET /leads/{id}), from the lead's workflow:
    workflow_status: str | None = None  # RUNNING, COMPLETED, ...
    cadence_step: str | None = None
    next_action: str | None = None
    cadence_stopped: bool | None = None
    # Detail view only: the definitions the lead is enrolled in (its first touch and cadences), newest first.
    definitions: list[DefinitionRunRef] | None = None
    created_at: datetime
    updated_at: datetime


class DefinitionRunRef(BaseModel):
    key: str
    version: int | None
    workflow_id: str
    status: str  # Temporal's status for a run recorded as running (running, completed, ...); else closed
    started_at: datetime
    current_step: str | None = None  # a running run's step now (its workflow's state query)


class LeadPage(BaseModel):
    items: list[LeadPublic]
    next_cursor: str | None
